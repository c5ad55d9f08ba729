//! Parameter stores (`param_stores` in the payload): named sets of parameters a client reads
//! with `getParameterStore(name).get(param, fallback)`, each a static value or a reference to
//! a gate, config, experiment or layer the client SDK resolves from the same initialize
//! response. The server's part is to send them in the shape Statsig's core SDK (0.24) gives its
//! initialize responses: store and referenced names hashed as the spec names are, each
//! parameter with its `name` and the fields of its kind only, and only the stores a key's
//! target app may see.

use ahash::AHashSet;
use serde_json::{Map, Value};

use crate::initialize::HashAlgorithm;

/// One parameter store, rendered once per name hashing for initialize responses.
#[derive(Debug)]
pub(crate) struct ParamStore {
    /// `targetAppIDs`: the apps whose keys see the store (None: only keys without an app).
    target_app_ids: Option<AHashSet<Box<str>>>,
    /// `"<store name>":{<parameters>}` as an initialize response holds it, for djb2, sha256
    /// and no hashing.
    rendered: [String; 3],
}

/// The fields each kind of parameter keeps, in the order the core SDK tries them (a
/// parameter is the first kind whose fields it has all of), and which field names another
/// entity (hashed like a spec name).
const KINDS: [(&[&str], Option<&str>); 5] = [
    (&["ref_type", "param_type", "value"], None),
    (
        &[
            "ref_type",
            "param_type",
            "gate_name",
            "pass_value",
            "fail_value",
        ],
        Some("gate_name"),
    ),
    (
        &["ref_type", "param_type", "config_name", "param_name"],
        Some("config_name"),
    ),
    (
        &["ref_type", "param_type", "experiment_name", "param_name"],
        Some("experiment_name"),
    ),
    (
        &["ref_type", "param_type", "layer_name", "param_name"],
        Some("layer_name"),
    ),
];

/// Fields that must be strings; any JSON value does for the others (`value`, `pass_value`...).
const STRING_FIELDS: [&str; 7] = [
    "ref_type",
    "param_type",
    "gate_name",
    "config_name",
    "experiment_name",
    "layer_name",
    "param_name",
];

impl ParamStore {
    /// The payload's stores; one that is not a store, or a parameter of no known kind, is
    /// left out with a warning.
    pub(crate) fn compile_all(doc: &Map<String, Value>, warnings: &mut Vec<String>) -> Vec<Self> {
        let Some(stores) = doc.get("param_stores").and_then(Value::as_object) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(stores.len());
        for (name, store) in stores {
            let Some(parameters) = store.get("parameters").and_then(Value::as_object) else {
                warnings.push(format!("param_stores.{name}: no parameters object"));
                continue;
            };
            let mut kept = Vec::with_capacity(parameters.len());
            for (param, value) in parameters {
                match parameter_kind(value) {
                    Some(kind) => kept.push((param, value, kind)),
                    None => warnings.push(format!(
                        "param_stores.{name}.{param}: not a static value or a gate, config, experiment or layer reference"
                    )),
                }
            }
            let target_app_ids = store
                .get("targetAppIDs")
                .and_then(Value::as_array)
                .map(|apps| {
                    apps.iter()
                        .filter_map(Value::as_str)
                        .map(Box::from)
                        .collect()
                });
            let render = |hash: HashAlgorithm| {
                let params: Map<String, Value> = kept
                    .iter()
                    .map(|&(param, value, (fields, reference))| {
                        let mut out = Map::new();
                        out.insert("name".to_owned(), param.as_str().into());
                        for &field in fields {
                            let mut v = value[field].clone();
                            if Some(field) == reference {
                                v = hash.hash(v.as_str().unwrap_or_default()).into();
                            }
                            out.insert(field.to_owned(), v);
                        }
                        (param.clone(), Value::Object(out))
                    })
                    .collect();
                format!("{}:{}", Value::from(hash.hash(name)), Value::Object(params))
            };
            out.push(ParamStore {
                target_app_ids,
                rendered: [
                    render(HashAlgorithm::Djb2),
                    render(HashAlgorithm::Sha256),
                    render(HashAlgorithm::None),
                ],
            });
        }
        out
    }

    /// Whether a key bound to `target_app` (None: no app) sees this store: as for specs.
    pub(crate) fn visible_to(&self, target_app: Option<&str>) -> bool {
        match target_app {
            None => true,
            Some(app) => self
                .target_app_ids
                .as_ref()
                .is_some_and(|apps| apps.contains(app)),
        }
    }

    /// The store's `"name":{...}` entry, names hashed with `hash`.
    pub(crate) fn rendered(&self, hash: HashAlgorithm) -> &str {
        match hash {
            HashAlgorithm::Djb2 => &self.rendered[0],
            HashAlgorithm::Sha256 => &self.rendered[1],
            HashAlgorithm::None => &self.rendered[2],
        }
    }
}

/// The first kind whose fields `param` has, with the right types.
fn parameter_kind(param: &Value) -> Option<(&'static [&'static str], Option<&'static str>)> {
    KINDS.into_iter().find(|(fields, _)| {
        fields.iter().all(|&field| match param.get(field) {
            None => false,
            Some(v) => !STRING_FIELDS.contains(&field) || v.is_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::initialize::initialize_for_user_u;
    use crate::{HashAlgorithm, Ruleset};

    fn initialize(rs: &Ruleset, hash: HashAlgorithm, target_app: Option<&str>) -> Value {
        let body = initialize_for_user_u(rs, hash, target_app);
        serde_json::from_slice::<Value>(&body).unwrap()["param_stores"].clone()
    }

    /// Names hashed as the response asks, a kind's fields only, a store only for its apps,
    /// and a parameter of no kind left out with a warning.
    #[test]
    fn stores_are_sent_hashed_trimmed_and_by_target_app() {
        let rs = Ruleset::from_value(json!({
            "time": 1, "feature_gates": {}, "dynamic_configs": {}, "layer_configs": {},
            "param_stores": {
                "shop": {"parameters": {
                    "flag": {"ref_type": "gate", "param_type": "boolean", "gate_name": "g",
                             "pass_value": true, "fail_value": false, "note": "dropped"},
                    "title": {"ref_type": "static", "param_type": "string", "value": "Hi"},
                    "broken": {"ref_type": "gate", "param_type": "boolean"}}},
                "web_only": {"targetAppIDs": ["web"], "parameters": {}}}
        }))
        .unwrap();
        assert_eq!(
            rs.warnings(),
            ["param_stores.shop.broken: not a static value or a gate, config, experiment or layer reference"]
        );
        let flag = |gate: &str| {
            json!({"name": "flag", "ref_type": "gate", "param_type": "boolean", "gate_name": gate,
                   "pass_value": true, "fail_value": false})
        };
        let title =
            json!({"name": "title", "ref_type": "static", "param_type": "string", "value": "Hi"});
        assert_eq!(
            initialize(&rs, HashAlgorithm::None, None),
            json!({"shop": {"flag": flag("g"), "title": title}, "web_only": {}})
        );
        let djb2 = |s: &str| HashAlgorithm::Djb2.hash(s);
        assert_eq!(
            initialize(&rs, HashAlgorithm::Djb2, Some("web")),
            json!({ djb2("web_only"): {} })
        );
        assert_eq!(initialize(&rs, HashAlgorithm::Djb2, Some("ios")), json!({}));
        let sha = HashAlgorithm::Sha256;
        assert_eq!(
            initialize(&rs, sha, None)[sha.hash("shop")]["flag"],
            flag(&sha.hash("g"))
        );
    }
}
