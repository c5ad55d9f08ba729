//! The `/v1/initialize` response client SDKs read: every gate, config, experiment and layer
//! evaluated for one user, names hashed as the client asks, in the shape Statsig's core SDK
//! generates (`get_client_initialize_response`).

use serde_json::{json, Map, Value};

use crate::eval::{EvalContext, Evaluation, SecondaryExposure};
use crate::hash::{djb2, sha256_base64};
use crate::ruleset::{Ruleset, Spec, SpecKind};

/// How spec names are hashed in an initialize response (the request's `hash` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// Statsig's 32-bit djb2, printed unsigned: the client SDKs' default.
    Djb2,
    /// base64(SHA-256(name)).
    Sha256,
    /// Names in clear.
    None,
}

impl HashAlgorithm {
    /// Parses the request's `hash` value (`djb2`, `sha256`, `none`); None for anything else.
    pub fn parse(s: &str) -> Option<HashAlgorithm> {
        match s {
            "djb2" => Some(HashAlgorithm::Djb2),
            "sha256" => Some(HashAlgorithm::Sha256),
            "none" => Some(HashAlgorithm::None),
            _ => None,
        }
    }

    /// The value echoed as `hash_used`.
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Djb2 => "djb2",
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::None => "none",
        }
    }

    /// Hashes one name.
    pub fn hash(self, name: &str) -> String {
        match self {
            HashAlgorithm::Djb2 => djb2(name),
            HashAlgorithm::Sha256 => sha256_base64(name),
            HashAlgorithm::None => name.to_owned(),
        }
    }
}

/// What an initialize response is built for.
#[derive(Debug, Clone, Copy)]
pub struct InitializeRequest<'a> {
    /// The user and clock.
    pub ctx: EvalContext<'a>,
    /// The user as sent (echoed back without `privateAttributes`).
    pub user_json: &'a Value,
    /// Name hashing.
    pub hash: HashAlgorithm,
    /// The client key's target app: only specs listing it in `targetAppIDs` are sent.
    pub target_app: Option<&'a str>,
}

impl Ruleset {
    /// Builds the initialize response body for one user.
    pub fn client_initialize(&self, req: &InitializeRequest<'_>) -> Value {
        let hash = req.hash;
        let wanted = |spec: &Spec| match req.target_app {
            None => true,
            Some(app) => spec
                .target_app_ids
                .as_ref()
                .is_some_and(|apps| apps.contains(app)),
        };
        let mut tables: [Map<String, Value>; 3] = Default::default();
        for kind in [SpecKind::Gate, SpecKind::Config, SpecKind::Layer] {
            for (idx, spec) in self.specs[kind as usize].iter().enumerate() {
                if !wanted(spec) || matches!(&*spec.entity, "segment" | "holdout") {
                    continue;
                }
                let eval = self.evaluate_index(kind, idx as u32, &req.ctx);
                let name = hash.hash(&spec.name);
                let entry = match kind {
                    SpecKind::Gate => gate_entry(&name, &eval, hash),
                    SpecKind::Config if &*spec.entity == "experiment" => {
                        experiment_entry(&name, &eval, hash)
                    }
                    SpecKind::Config => config_entry(&name, &eval, hash),
                    SpecKind::Layer => layer_entry(&name, &eval, hash),
                };
                tables[kind as usize].insert(name, entry);
            }
        }
        let [feature_gates, dynamic_configs, layer_configs] = tables;
        json!({
            "feature_gates": feature_gates,
            "dynamic_configs": dynamic_configs,
            "layer_configs": layer_configs,
            "time": self.time,
            "has_updates": true,
            "hash_used": hash.as_str(),
            "user": self.loggable_user(req.user_json),
            "evaluated_keys": evaluated_keys(req.user_json),
            "sdkParams": {},
            "param_stores": {},
        })
    }

    /// The user as logged and echoed: no `privateAttributes`, and the ruleset's default
    /// environment when the user carries none.
    pub fn loggable_user(&self, user_json: &Value) -> Value {
        let mut user = user_json.as_object().cloned().unwrap_or_default();
        user.remove("privateAttributes");
        if !user.contains_key("statsigEnvironment") && !self.default_environment.is_empty() {
            let env: Map<String, Value> = self
                .default_environment
                .iter()
                .map(|(k, v)| (k.clone(), v.json.clone()))
                .collect();
            user.insert("statsigEnvironment".into(), Value::Object(env));
        }
        Value::Object(user)
    }
}

fn evaluated_keys(user: &Value) -> Value {
    let mut keys = Map::new();
    if let Some(id) = user.get("userID").filter(|v| !v.is_null() && *v != "") {
        keys.insert("userID".into(), id.clone());
    }
    if let Some(ids) = user
        .get("customIDs")
        .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
    {
        keys.insert("customIDs".into(), ids.clone());
    }
    Value::Object(keys)
}

fn exposures(list: &[SecondaryExposure<'_>], hash: HashAlgorithm) -> Value {
    list.iter()
        .map(|e| {
            json!({
                "gate": hash.hash(e.gate),
                "gateValue": if e.gate_value { "true" } else { "false" },
                "ruleID": e.rule_id,
            })
        })
        .collect()
}

fn gate_entry(name: &str, eval: &Evaluation<'_>, hash: HashAlgorithm) -> Value {
    json!({
        "name": name,
        "value": eval.bool_value,
        "rule_id": eval.rule_id,
        "id_type": eval.id_type,
        "secondary_exposures": exposures(&eval.secondary_exposures, hash),
    })
}

/// The fields every config, experiment and layer entry carries.
fn config_fields(name: &str, eval: &Evaluation<'_>, hash: HashAlgorithm) -> Map<String, Value> {
    let json_value = match eval.json_value {
        Some(v @ Value::Object(_)) => v.clone(),
        _ => json!({}),
    };
    let mut entry = Map::new();
    entry.insert("name".into(), name.into());
    entry.insert("value".into(), json_value);
    entry.insert("rule_id".into(), eval.rule_id.into());
    entry.insert("group".into(), eval.rule_id.into());
    entry.insert(
        "is_device_based".into(),
        matches!(eval.id_type, "stableID" | "stableid").into(),
    );
    entry.insert("id_type".into(), eval.id_type.into());
    entry.insert(
        "secondary_exposures".into(),
        exposures(&eval.secondary_exposures, hash),
    );
    if let Some(group_name) = eval.group_name {
        entry.insert("group_name".into(), group_name.into());
    }
    entry
}

fn explicit_parameters(params: &[Box<str>]) -> Value {
    params.iter().map(|p| Value::from(&**p)).collect()
}

fn config_entry(name: &str, eval: &Evaluation<'_>, hash: HashAlgorithm) -> Value {
    let mut entry = config_fields(name, eval, hash);
    // The dynamic-config shape has no group name (Statsig's core SDK leaves it out).
    entry.remove("group_name");
    entry.insert("passed".into(), eval.bool_value.into());
    Value::Object(entry)
}

fn experiment_entry(name: &str, eval: &Evaluation<'_>, hash: HashAlgorithm) -> Value {
    let mut entry = config_fields(name, eval, hash);
    entry.insert(
        "is_experiment_active".into(),
        eval.is_experiment_active.into(),
    );
    entry.insert(
        "is_user_in_experiment".into(),
        eval.is_experiment_group.into(),
    );
    if eval.is_in_layer {
        entry.insert("is_in_layer".into(), true.into());
    }
    if let Some(params) = eval.explicit_parameters {
        entry.insert("explicit_parameters".into(), explicit_parameters(params));
    }
    Value::Object(entry)
}

fn layer_entry(name: &str, eval: &Evaluation<'_>, hash: HashAlgorithm) -> Value {
    let mut entry = config_fields(name, eval, hash);
    let undelegated = eval
        .undelegated_secondary_exposures
        .as_deref()
        .unwrap_or(&[]);
    entry.insert(
        "explicit_parameters".into(),
        explicit_parameters(eval.explicit_parameters.unwrap_or(&[])),
    );
    entry.insert(
        "undelegated_secondary_exposures".into(),
        exposures(undelegated, hash),
    );
    if let Some(delegate) = eval.config_delegate.filter(|d| !d.is_empty()) {
        entry.insert(
            "allocated_experiment_name".into(),
            hash.hash(delegate).into(),
        );
        entry.insert(
            "is_experiment_active".into(),
            eval.is_experiment_active.into(),
        );
        entry.insert(
            "is_user_in_experiment".into(),
            eval.is_experiment_group.into(),
        );
    }
    Value::Object(entry)
}
