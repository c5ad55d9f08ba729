//! Console documents (the Statsig console API's field names: `isEnabled`, `rules`,
//! `passPercentage`, `conditions` with `user_id`/`custom_field`/`passes_segment`/... types)
//! checked and turned into `download_config_specs` specs the evaluator compiles.
//!
//! Stored documents carry internal fields prefixed `_` (salts, a layered experiment's bucket
//! range): fixed when the entity is created so bucketing never moves on an edit, and never
//! shown by the API.

use serde_json::{json, Map, Value};

use super::state::{Kind, State};
use crate::rules::Overlay;

/// One thing wrong with a request body, named by its JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// e.g. `rules[0].conditions[1].operator`.
    pub property: String,
    /// What is wrong with it.
    pub error: String,
}

type Checked<T> = Result<T, Vec<FieldError>>;

fn bad(property: impl Into<String>, error: impl Into<String>) -> Vec<FieldError> {
    vec![FieldError {
        property: property.into(),
        error: error.into(),
    }]
}

/// The operators the evaluator knows (Statsig's), plus the console's `is_null` pair.
const OPERATORS: &[&str] = &[
    "gt",
    "gte",
    "lt",
    "lte",
    "version_gt",
    "version_gte",
    "version_lt",
    "version_lte",
    "version_eq",
    "version_neq",
    "any",
    "none",
    "any_case_sensitive",
    "none_case_sensitive",
    "str_starts_with_any",
    "str_ends_with_any",
    "str_contains_any",
    "str_contains_none",
    "str_matches",
    "eq",
    "neq",
    "before",
    "after",
    "on",
    "in_segment_list",
    "not_in_segment_list",
    "array_contains_any",
    "array_contains_none",
    "array_contains_all",
    "not_array_contains_all",
    "is_null",
    "is_not_null",
];

/// A console condition type → the spec condition `(type, field)` it compiles to.
fn condition_target(console_type: &str) -> Option<(&'static str, Option<&'static str>)> {
    Some(match console_type {
        "public" => ("public", None),
        "user_id" => ("user_field", Some("userID")),
        "email" => ("user_field", Some("email")),
        "ip_address" => ("user_field", Some("ip")),
        "locale" => ("user_field", Some("locale")),
        "app_version" => ("user_field", Some("appVersion")),
        "custom_field" => ("user_field", None),
        "country" => ("ip_based", Some("country")),
        "browser_name" => ("ua_based", Some("browser_name")),
        "browser_version" => ("ua_based", Some("browser_version")),
        "os_name" => ("ua_based", Some("os_name")),
        "os_version" => ("ua_based", Some("os_version")),
        "passes_gate" | "passes_segment" => ("pass_gate", None),
        "fails_gate" | "fails_segment" => ("fail_gate", None),
        "time" => ("current_time", None),
        "environment_tier" => ("environment_field", Some("tier")),
        "unit_id" => ("unit_id", None),
        "user_bucket" => ("user_bucket", None),
        "target_app" => ("target_app", None),
        _ => return None,
    })
}

/// Field names the API takes for each kind, beyond `id name description idType tags`
/// (anything else is refused, so a typo is named instead of silently ignored).
fn kind_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Gate => &["isEnabled", "rules", "targetApps"],
        Kind::DynamicConfig => &["isEnabled", "rules", "targetApps", "defaultValue"],
        Kind::Segment => &["type", "rules", "ids"],
        Kind::Experiment => &[
            "hypothesis",
            "groups",
            "allocation",
            "targetingGateID",
            "layerID",
            "controlGroupID",
            "targetApps",
        ],
        Kind::Layer => &["parameters"],
        Kind::Key => &[],
    }
}

const COMMON_FIELDS: [&str; 5] = ["id", "name", "description", "idType", "tags"];

/// Statsig's fields that Gatehouse keeps as sent and shows back, but that evaluation never
/// reads (ownership, monitoring, analysis settings). Clients written against Statsig's API
/// send them (its documented examples do, its Terraform provider always sends an
/// experiment's metrics): refusing them would refuse the whole write.
fn kept_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Gate => &[
            "team",
            "teamID",
            "owner",
            "creatorID",
            "creatorEmail",
            "type",
            "measureMetricLifts",
            "monitoringMetrics",
            "holdoutIDs",
            "reviewSettings",
        ],
        Kind::DynamicConfig | Kind::Segment | Kind::Layer => &[
            "team",
            "teamID",
            "owner",
            "creatorID",
            "creatorEmail",
            "holdoutIDs",
        ],
        Kind::Experiment => &[
            "team",
            "teamID",
            "owner",
            "creatorID",
            "creatorEmail",
            "links",
            "primaryMetrics",
            "secondaryMetrics",
            "primaryMetricTags",
            "secondaryMetricTags",
            "duration",
            "targetExposures",
            "defaultConfidenceInterval",
            "bonferroniCorrection",
            "bonferroniCorrectionPerMetric",
            "benjaminiHochbergPerMetric",
            "benjaminiHochbergPerVariant",
            "benjaminiPrimaryMetricsOnly",
            "sequentialTesting",
            "allocationDuration",
            "analysisEndTime",
            "analyticsType",
            "assignmentSourceExperimentName",
            "assignmentSourceName",
            "cohortWaitUntilEndToInclude",
            "cohortedAnalysisDuration",
            "cohortedMetricsMatureAfterEnd",
            "fixedAnalysisDuration",
            "isAnalysisOnly",
            "scheduledReloadHour",
            "scheduledReloadType",
            "secondaryIDType",
        ],
        Kind::Key => &[],
    }
}

/// Fields answers carry that only the server sets (or only their own endpoints change:
/// status, overrides): ignored in a write, so an entity read, edited and written back
/// whole is accepted.
const SERVER_SET: [&str; 14] = [
    "version",
    "lastModifiedTime",
    "lastModifierID",
    "lastModifierName",
    "lastModifierEmail",
    "createdTime",
    "creatorName",
    "permalink",
    "checksPerHour",
    "typeReason",
    "isActive",
    "status",
    "launchedGroupID",
    "overrides",
];

/// Checks a create or full-update body and returns the document to store. `existing` (an
/// update) lends its internal fields, status and rule ids; `name` is the entity's name.
pub fn normalize(kind: Kind, name: &str, body: &Value, existing: Option<&Value>) -> Checked<Value> {
    let Value::Object(body) = body else {
        return Err(bad("", "the body must be a JSON object"));
    };
    for field in body.keys().map(String::as_str) {
        let known = [
            &COMMON_FIELDS[..],
            kind_fields(kind),
            kept_fields(kind),
            &SERVER_SET,
        ];
        if !known.iter().any(|fields| fields.contains(&field)) {
            return Err(bad(field, "unknown field"));
        }
    }
    check_name(name)?;
    if let Some(other) = body.get("name").and_then(Value::as_str) {
        if other != name {
            return Err(bad(
                "name",
                "a rename is not supported; create a new entity",
            ));
        }
    }
    let old = |field: &str| existing.and_then(|e| e.get(field)).cloned();
    let mut doc: Map<String, Value> = kept_fields(kind)
        .iter()
        .filter_map(|&field| Some((field.to_owned(), body.get(field)?.clone())))
        .collect();
    doc.insert("id".into(), name.into());
    doc.insert("name".into(), name.into());
    doc.insert(
        "description".into(),
        opt_string(body, "description")?.unwrap_or_default().into(),
    );
    doc.insert(
        "idType".into(),
        opt_string(body, "idType")?
            .unwrap_or_else(|| "userID".into())
            .into(),
    );
    doc.insert(
        "tags".into(),
        Value::Array(
            string_list(body.get("tags"), "tags")?
                .into_iter()
                .map(Value::from)
                .collect(),
        ),
    );
    if kind != Kind::Segment && kind != Kind::Layer {
        let apps = string_list(body.get("targetApps"), "targetApps")?;
        doc.insert(
            "targetApps".into(),
            apps.into_iter().map(Value::from).collect(),
        );
    }
    doc.insert(
        "_salt".into(),
        old("_salt").unwrap_or_else(|| super::new_id().into()),
    );
    let old_rules = old("rules");
    let with_value = kind == Kind::DynamicConfig;
    match kind {
        Kind::Gate | Kind::DynamicConfig => {
            let enabled = match body.get("isEnabled") {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(bad("isEnabled", "must be true or false")),
            };
            doc.insert("isEnabled".into(), enabled.into());
            doc.insert(
                "rules".into(),
                rules(body.get("rules"), old_rules.as_ref(), with_value)?,
            );
            if kind == Kind::DynamicConfig {
                doc.insert("defaultValue".into(), object(body, "defaultValue")?);
            }
            doc.insert(
                "overrides".into(),
                old("overrides")
                    .unwrap_or_else(|| json!({"passingUserIDs": [], "failingUserIDs": []})),
            );
        }
        Kind::Segment => {
            let segment_type = opt_string(body, "type")?.unwrap_or_else(|| "rule_based".into());
            match segment_type.as_str() {
                "rule_based" => {
                    doc.insert(
                        "rules".into(),
                        rules(body.get("rules"), old_rules.as_ref(), false)?,
                    );
                }
                "id_list" => {
                    let ids = string_list(body.get("ids"), "ids")?;
                    doc.insert("ids".into(), ids.into_iter().map(Value::from).collect());
                }
                _ => return Err(bad("type", "must be rule_based or id_list")),
            }
            doc.insert("type".into(), segment_type.into());
        }
        Kind::Experiment => {
            let allocation = match body.get("allocation") {
                None => 100.0,
                Some(v) => percentage(v)
                    .ok_or_else(|| bad("allocation", "must be a number from 0 to 100"))?,
            };
            doc.insert("allocation".into(), allocation.into());
            doc.insert(
                "groups".into(),
                groups(body.get("groups"), old("groups").as_ref())?,
            );
            for field in ["targetingGateID", "layerID", "hypothesis", "controlGroupID"] {
                doc.insert(
                    field.into(),
                    opt_string(body, field)?.map_or(Value::Null, Value::from),
                );
            }
            doc.insert(
                "overrides".into(),
                old("overrides").unwrap_or_else(|| json!({"userIDOverrides": []})),
            );
            for field in ["status", "launchedGroupID", "_layerBuckets"] {
                doc.insert(field.into(), old(field).unwrap_or(Value::Null));
            }
            if doc["status"].is_null() {
                doc.insert("status".into(), "setup".into());
            }
        }
        Kind::Layer => {
            let mut parameters = Vec::new();
            let list = match body.get("parameters") {
                None => Vec::new(),
                Some(Value::Array(list)) => list.clone(),
                Some(_) => return Err(bad("parameters", "must be a list of {name, defaultValue}")),
            };
            for (i, p) in list.iter().enumerate() {
                let field = format!("parameters[{i}]");
                let name = p
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("{field}.name"), "required"))?;
                let default = p
                    .get("defaultValue")
                    .cloned()
                    .ok_or_else(|| bad(format!("{field}.defaultValue"), "required"))?;
                parameters.push(json!({"name": name, "defaultValue": default}));
            }
            doc.insert("parameters".into(), parameters.into());
        }
        Kind::Key => return Err(bad("", "keys are not rules")),
    }
    Ok(Value::Object(doc))
}

/// Names go into specs and URLs: letters, digits, `_ - . :` and spaces, 1–100 long.
fn check_name(name: &str) -> Checked<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | ':'));
    if ok {
        Ok(())
    } else {
        Err(bad("name", "1–100 letters, digits, spaces or _ - . :"))
    }
}

fn opt_string(body: &Map<String, Value>, field: &str) -> Checked<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

fn string_list(value: Option<&Value>, field: &str) -> Checked<Vec<String>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(field, "must be a list of strings")),
        Some(_) => Err(bad(field, "must be a list of strings")),
    }
}

fn object(body: &Map<String, Value>, field: &str) -> Checked<Value> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(json!({})),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(bad(field, "must be a JSON object")),
    }
}

fn percentage(v: &Value) -> Option<f64> {
    v.as_f64().filter(|p| (0.0..=100.0).contains(p))
}

/// Checks a rule list; rules keep their id across edits (matched by id, then by name), so
/// rule ids (and the salts made from them) stay put.
pub fn rules(value: Option<&Value>, old: Option<&Value>, with_value: bool) -> Checked<Value> {
    let list = match value {
        None | Some(Value::Null) => return Ok(json!([])),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(bad("rules", "must be a list")),
    };
    let old_rules = old.and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out = Vec::with_capacity(list.len());
    let (mut names, mut ids) = (
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
    );
    for (i, rule) in list.iter().enumerate() {
        out.push(one_rule(
            rule,
            &format!("rules[{i}]"),
            &old_rules,
            with_value,
        )?);
        let name = out[i]["name"].as_str().unwrap_or_default().to_owned();
        if !names.insert(name) {
            return Err(bad(format!("rules[{i}].name"), "duplicate rule name"));
        }
        // Rule ids salt the rules' bucketing and address them (`…/rules/{id}`).
        let id = out[i]["id"].as_str().unwrap_or_default().to_owned();
        if !ids.insert(id) {
            return Err(bad(format!("rules[{i}].id"), "duplicate rule id"));
        }
    }
    Ok(Value::Array(out))
}

/// Checks one rule (`path` names it in errors).
pub fn one_rule(rule: &Value, path: &str, old_rules: &[Value], with_value: bool) -> Checked<Value> {
    let Value::Object(rule) = rule else {
        return Err(bad(path, "must be a JSON object"));
    };
    let name = rule
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad(format!("{path}.name"), "required"))?;
    let pass = match rule.get("passPercentage") {
        None => 100.0,
        Some(v) => percentage(v).ok_or_else(|| {
            bad(
                format!("{path}.passPercentage"),
                "must be a number from 0 to 100",
            )
        })?,
    };
    // An empty id is no id (Statsig's own Terraform provider sends `"id": ""` for a new
    // rule): it would salt the rule's bucketing with "" and leave it unaddressable.
    let id = rule
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            old_rules
                .iter()
                .find(|r| r["name"] == name)
                .and_then(|r| r["id"].as_str().map(str::to_owned))
        })
        .unwrap_or_else(super::new_id);
    let conditions = match rule.get("conditions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(j, c)| condition(c, &format!("{path}.conditions[{j}]")).map(|_| c.clone()))
            .collect::<Checked<Vec<_>>>()?,
        Some(_) => return Err(bad(format!("{path}.conditions"), "must be a list")),
    };
    let environments = match rule.get("environments") {
        None | Some(Value::Null) => Value::Null,
        v => string_list(v, &format!("{path}.environments"))?
            .into_iter()
            .map(Value::from)
            .collect(),
    };
    let mut out = json!({"id": id, "name": name, "passPercentage": pass,
                         "conditions": conditions, "environments": environments});
    if with_value {
        out["returnValue"] = match rule.get("returnValue") {
            None | Some(Value::Null) => json!({}),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => return Err(bad(format!("{path}.returnValue"), "must be a JSON object")),
        };
    }
    Ok(out)
}

/// Checks one console condition and returns its spec form (`salt` is the rule's, for
/// `user_bucket`; `id_type` the entity's).
fn condition(c: &Value, path: &str) -> Checked<()> {
    compile_condition(c, path, "", "userID").map(|_| ())
}

fn compile_condition(c: &Value, path: &str, salt: &str, id_type: &str) -> Checked<Value> {
    let console_type = c
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{path}.type"), "required"))?;
    let (spec_type, field) = condition_target(console_type).ok_or_else(|| {
        bad(
            format!("{path}.type"),
            format!("unknown condition type {console_type:?}"),
        )
    })?;
    let field = match (console_type, field) {
        ("custom_field", _) => Some(
            c.get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("{path}.field"), "required for custom_field"))?
                .to_owned(),
        ),
        (_, f) => f.map(str::to_owned),
    };
    let mut target = c.get("targetValue").cloned().unwrap_or(Value::Null);
    let mut operator = c.get("operator").and_then(Value::as_str).map(str::to_owned);
    match spec_type {
        "public" => operator = None,
        "pass_gate" | "fail_gate" => {
            operator = None;
            let named = match &target {
                Value::String(s) => Some(s.clone()),
                Value::Array(a) if a.len() == 1 => a[0].as_str().map(str::to_owned),
                _ => None,
            }
            .ok_or_else(|| {
                bad(
                    format!("{path}.targetValue"),
                    "the name of one gate or segment",
                )
            })?;
            target = if console_type.ends_with("segment") {
                format!("segment:{named}").into()
            } else {
                named.into()
            };
        }
        _ => {
            let op = operator
                .as_deref()
                .ok_or_else(|| bad(format!("{path}.operator"), "required"))?;
            if !OPERATORS.contains(&op) {
                return Err(bad(
                    format!("{path}.operator"),
                    format!("unknown operator {op:?}"),
                ));
            }
            // The console's null checks are equality with null in a spec.
            if let Some(eq) = match op {
                "is_null" => Some("eq"),
                "is_not_null" => Some("neq"),
                _ => None,
            } {
                operator = Some(eq.into());
                target = Value::Null;
            } else if target.is_null() {
                return Err(bad(format!("{path}.targetValue"), "required"));
            }
        }
    }
    let unit_type = c.get("customID").and_then(Value::as_str).unwrap_or(id_type);
    let mut spec = json!({"type": spec_type, "targetValue": target, "operator": operator,
                          "field": field, "idType": unit_type, "isDeviceBased": false,
                          "additionalValues": {}});
    if spec_type == "user_bucket" {
        spec["additionalValues"] = json!({"salt": salt});
    }
    Ok(spec)
}

/// A rule's spec conditions (its `environments` become an `environment_field` condition,
/// as Statsig emits environment-limited rules).
fn spec_conditions(rule: &Value, path: &str, id_type: &str) -> Vec<Value> {
    let salt = rule["id"].as_str().unwrap_or_default();
    let mut out: Vec<Value> = rule["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(j, c)| compile_condition(c, &format!("{path}[{j}]"), salt, id_type).ok())
        .collect();
    if let Some(envs) = rule["environments"].as_array() {
        out.push(
            json!({"type": "environment_field", "field": "tier", "operator": "any",
                        "targetValue": envs, "idType": id_type, "additionalValues": {}}),
        );
    }
    out
}

fn unit_rule(id: &str, id_type: &str, ids: &Value, pass: f64, value: Value) -> Value {
    json!({"id": id, "name": id, "salt": id, "idType": id_type, "passPercentage": pass,
           "returnValue": value,
           "conditions": [{"type": "unit_id", "operator": "any", "targetValue": ids,
                           "idType": id_type, "additionalValues": {}}]})
}

/// Statsig's `targetApps` become the spec's `targetAppIDs` (keys bound to an app see only
/// the specs listing it).
fn with_target_apps(mut spec: Value, doc: &Value) -> Value {
    if doc["targetApps"].as_array().is_some_and(|a| !a.is_empty()) {
        spec["targetAppIDs"] = doc["targetApps"].clone();
    }
    spec
}

/// A gate, dynamic config or segment document as a spec.
fn rules_spec(doc: &Value, spec_name: &str, entity: &str, with_value: bool) -> Value {
    let id_type = doc["idType"].as_str().unwrap_or("userID");
    let mut rules = Vec::new();
    let overrides = &doc["overrides"];
    let (pass_value, fail_value) = if with_value {
        (doc["defaultValue"].clone(), doc["defaultValue"].clone())
    } else {
        (json!(true), json!(false))
    };
    for (list, pass, value) in [
        ("passingUserIDs", 100.0, &pass_value),
        ("failingUserIDs", 0.0, &fail_value),
    ] {
        if overrides[list]
            .as_array()
            .is_some_and(|ids| !ids.is_empty())
        {
            rules.push(unit_rule(
                "override",
                id_type,
                &overrides[list],
                pass,
                value.clone(),
            ));
        }
    }
    if let Some(ids) = doc.get("ids") {
        rules.push(unit_rule("id_list", id_type, ids, 100.0, json!(true)));
    }
    for (i, rule) in doc["rules"].as_array().into_iter().flatten().enumerate() {
        let id = rule["id"].as_str().unwrap_or_default();
        rules.push(json!({
            "id": id, "name": rule["name"], "salt": id, "idType": id_type,
            "passPercentage": rule["passPercentage"],
            "returnValue": if with_value { rule["returnValue"].clone() } else { json!(true) },
            "conditions": spec_conditions(rule, &format!("rules[{i}].conditions"), id_type),
        }));
    }
    with_target_apps(
        json!({
            "name": spec_name, "type": if with_value { "dynamic_config" } else { "feature_gate" },
            "entity": entity, "salt": doc["_salt"], "enabled": doc["isEnabled"].as_bool().unwrap_or(true),
            "idType": id_type, "isDeviceBased": false,
            "defaultValue": if with_value { doc["defaultValue"].clone() } else { json!(false) },
            "rules": rules,
        }),
        doc,
    )
}

/// Checks experiment groups: at least one, unique names, sizes adding up to 100.
fn groups(value: Option<&Value>, old: Option<&Value>) -> Checked<Value> {
    let list = match value {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => {
            return Err(bad(
                "groups",
                "a list of at least one {name, size, parameterValues}",
            ))
        }
    };
    let old = old.and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out = Vec::new();
    let mut total = 0.0;
    for (i, g) in list.iter().enumerate() {
        let name = g
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad(format!("groups[{i}].name"), "required"))?;
        if out.iter().any(|o: &Value| o["name"] == name) {
            return Err(bad(format!("groups[{i}].name"), "duplicate group name"));
        }
        let size = g.get("size").and_then(percentage).ok_or_else(|| {
            bad(
                format!("groups[{i}].size"),
                "must be a number from 0 to 100",
            )
        })?;
        total += size;
        let params = match g.get("parameterValues") {
            None | Some(Value::Null) => json!({}),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => {
                return Err(bad(
                    format!("groups[{i}].parameterValues"),
                    "must be a JSON object",
                ))
            }
        };
        // Statsig can disable a group (its units get the control's values); Gatehouse has
        // no such state, and ignoring the flag would bucket units into it.
        if g.get("disabled").and_then(Value::as_bool) == Some(true) {
            return Err(bad(
                format!("groups[{i}].disabled"),
                "disabling a group is not supported; give it size 0",
            ));
        }
        let id = old
            .iter()
            .find(|o| o["name"] == name)
            .and_then(|o| o["id"].as_str().map(str::to_owned))
            .unwrap_or_else(super::new_id);
        let mut group = json!({"id": id, "name": name, "size": size, "parameterValues": params});
        for kept in ["description", "foreignGroupID"] {
            if let Some(value) = g.get(kept) {
                group[kept] = value.clone();
            }
        }
        out.push(group);
    }
    if (total - 100.0).abs() > 1e-6 {
        return Err(bad("groups", format!("sizes add up to {total}, not 100")));
    }
    Ok(Value::Array(out))
}

fn bucket_rule(id: &str, salt: &str, id_type: &str, lo: u32, hi: u32, value: Value) -> Value {
    let bucket = |op: &str, n: u32| {
        json!({"type": "user_bucket", "operator": op, "targetValue": n, "idType": id_type,
               "additionalValues": {"salt": salt}})
    };
    json!({"id": id, "name": id, "salt": id, "idType": id_type, "passPercentage": 100,
           "returnValue": value, "conditions": [bucket("gte", lo), bucket("lt", hi)]})
}

/// An experiment as a spec: targeting gate, then the units outside its allocation (in a
/// layer: outside its bucket range of the layer), then one bucket range per group.
fn experiment_spec(doc: &Value, layer: Option<&Value>) -> Value {
    let name = doc["name"].as_str().unwrap_or_default();
    let id_type = doc["idType"].as_str().unwrap_or("userID");
    let salt = doc["_salt"].as_str().unwrap_or_default();
    let status = doc["status"].as_str().unwrap_or("setup");
    let default = layer.map_or_else(|| json!({}), layer_defaults);
    let groups = doc["groups"].as_array().cloned().unwrap_or_default();
    let mut rules = Vec::new();
    if matches!(status, "setup" | "active") {
        // Forced users first, with their group's values.
        for entry in doc["overrides"]["userIDOverrides"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(g) = groups.iter().find(|g| g["name"] == entry["groupID"]) {
                let mut rule = unit_rule(
                    "override",
                    id_type,
                    &entry["ids"],
                    100.0,
                    g["parameterValues"].clone(),
                );
                rule["groupName"] = g["name"].clone();
                rules.push(rule);
            }
        }
    }
    // Units failing the targeting gate get the default, while the experiment runs and after
    // the decision (a shipped group goes to the units that pass, as in Statsig).
    if let (Some(gate), "active" | "decision_made") = (doc["targetingGateID"].as_str(), status) {
        rules.push(json!({"id": "targetingGate", "name": "targetingGate",
            "salt": "targetingGate", "idType": id_type, "passPercentage": 100,
            "returnValue": default,
            "conditions": [{"type": "fail_gate", "targetValue": gate, "idType": id_type,
                            "additionalValues": {}}]}));
    }
    match status {
        "active" => {
            // Who is in the experiment is decided on one salt (the layer's range, or the
            // experiment's own allocation salt), which group on another (the experiment's,
            // all 1000 buckets): so a changed allocation lets units in or out and moves none
            // between groups, as Statsig's allocation does.
            let outside = match (layer, layer_range(doc)) {
                (Some(layer), Some([lo, hi])) => {
                    let layer_salt = layer["_salt"].as_str().unwrap_or_default();
                    vec![
                        (layer_salt.to_owned(), 0, lo),
                        (layer_salt.to_owned(), hi, 1000),
                    ]
                }
                _ => {
                    let allocated = allocated_buckets(doc);
                    vec![(format!("{salt}.allocation"), allocated, 1000)]
                }
            };
            for (bucket_salt, lo, hi) in outside.into_iter().filter(|(_, lo, hi)| lo < hi) {
                rules.push(bucket_rule(
                    "layerAssignment",
                    &bucket_salt,
                    id_type,
                    lo,
                    hi,
                    default.clone(),
                ));
            }
            let mut low = 0u32;
            let mut cumulative = 0.0;
            for g in &groups {
                cumulative += g["size"].as_f64().unwrap_or(0.0);
                let high = (cumulative * 10.0).round() as u32;
                let mut rule = bucket_rule(
                    g["id"].as_str().unwrap_or_default(),
                    salt,
                    id_type,
                    low,
                    high,
                    g["parameterValues"].clone(),
                );
                rule["groupName"] = g["name"].clone();
                rule["isExperimentGroup"] = true.into();
                rules.push(rule);
                low = high;
            }
        }
        "decision_made" => {
            if let Some(g) = groups.iter().find(|g| g["name"] == doc["launchedGroupID"]) {
                rules.push(json!({"id": "launchedGroup", "name": "launchedGroup",
                    "salt": "launchedGroup", "idType": id_type, "passPercentage": 100,
                    "returnValue": g["parameterValues"], "groupName": g["name"],
                    "conditions": [{"type": "public", "additionalValues": {}}]}));
            }
        }
        _ => {}
    }
    let mut spec = json!({
        "name": name, "type": "dynamic_config", "entity": "experiment", "salt": salt,
        "enabled": true, "isActive": status == "active", "hasSharedParams": layer.is_some(),
        "idType": id_type, "isDeviceBased": false, "defaultValue": default, "rules": rules,
    });
    spec = with_target_apps(spec, doc);
    if layer.is_some() {
        let params: Vec<&String> = groups
            .iter()
            .filter_map(|g| g["parameterValues"].as_object())
            .flat_map(|p| p.keys())
            .collect();
        spec["explicitParameters"] = json!(params);
    }
    spec
}

/// How many of 1000 buckets an experiment's `allocation` (a percentage) takes.
pub fn allocated_buckets(doc: &Value) -> u32 {
    (doc["allocation"].as_f64().unwrap_or(100.0) * 10.0).round() as u32
}

/// The `[lo, hi)` share of its layer's 1000 buckets an active layered experiment holds.
pub fn layer_range(doc: &Value) -> Option<[u32; 2]> {
    let range = doc["_layerBuckets"].as_array()?;
    Some([
        range.first()?.as_u64()? as u32,
        range.get(1)?.as_u64()? as u32,
    ])
}

/// The lowest free range of `size` buckets given the ranges already taken.
pub fn free_range(taken: &[[u32; 2]], size: u32) -> Option<[u32; 2]> {
    let mut taken = taken.to_vec();
    taken.sort_unstable();
    let mut start = 0;
    for [lo, hi] in taken {
        if lo >= start + size {
            break;
        }
        start = start.max(hi);
    }
    (start + size <= 1000).then_some([start, start + size])
}

fn layer_defaults(layer: &Value) -> Value {
    let mut out = Map::new();
    for p in layer["parameters"].as_array().into_iter().flatten() {
        if let Some(name) = p["name"].as_str() {
            out.insert(name.to_owned(), p["defaultValue"].clone());
        }
    }
    Value::Object(out)
}

/// A layer as a spec: each active experiment's bucket range delegates to it.
fn layer_spec(doc: &Value, experiments: &[(&str, [u32; 2])]) -> Value {
    let name = doc["name"].as_str().unwrap_or_default();
    let id_type = doc["idType"].as_str().unwrap_or("userID");
    let salt = doc["_salt"].as_str().unwrap_or_default();
    let defaults = layer_defaults(doc);
    let rules: Vec<Value> = experiments
        .iter()
        .map(|(exp, [lo, hi])| {
            let mut rule = bucket_rule(exp, salt, id_type, *lo, *hi, defaults.clone());
            rule["configDelegate"] = (*exp).into();
            rule
        })
        .collect();
    json!({"name": name, "type": "dynamic_config", "entity": "layer", "salt": salt,
           "enabled": true, "idType": id_type, "isDeviceBased": false,
           "defaultValue": defaults, "rules": rules})
}

/// Every live console entity of `state` as specs.
pub fn overlay(state: &State) -> Overlay {
    let mut overlay = Overlay {
        time: state.clock(),
        ..Overlay::default()
    };
    for (name, _, doc) in state.live(Kind::Gate) {
        overlay
            .feature_gates
            .push(rules_spec(doc, name, "feature_gate", false));
    }
    for (name, _, doc) in state.live(Kind::Segment) {
        overlay.feature_gates.push(rules_spec(
            doc,
            &format!("segment:{name}"),
            "segment",
            false,
        ));
    }
    for (name, _, doc) in state.live(Kind::DynamicConfig) {
        overlay
            .dynamic_configs
            .push(rules_spec(doc, name, "dynamic_config", true));
    }
    let layers: Map<String, Value> = state
        .live(Kind::Layer)
        .map(|(name, _, doc)| (name.to_owned(), doc.clone()))
        .collect();
    let mut members: Map<String, Value> = Map::new();
    let mut delegations: std::collections::BTreeMap<&str, Vec<(&str, [u32; 2])>> =
        Default::default();
    for (name, _, doc) in state.live(Kind::Experiment) {
        let layer = doc["layerID"]
            .as_str()
            .and_then(|l| layers.get(l).map(|d| (l, d)));
        overlay
            .dynamic_configs
            .push(experiment_spec(doc, layer.map(|(_, d)| d)));
        if let Some((layer_name, _)) = layer {
            if let Value::Array(list) = members.entry(layer_name).or_insert_with(|| json!([])) {
                list.push(name.into());
            }
            if let (Some(range), Some("active")) = (layer_range(doc), doc["status"].as_str()) {
                delegations
                    .entry(layer_name)
                    .or_default()
                    .push((name, range));
            }
        }
    }
    for (name, doc) in &layers {
        let delegated = delegations
            .get(name.as_str())
            .map_or(&[][..], Vec::as_slice);
        overlay.layer_configs.push(layer_spec(doc, delegated));
        members.entry(name.clone()).or_insert_with(|| json!([]));
    }
    overlay.layers = members;
    overlay
}

/// What one console document names, each as (where, kind, name): gates in `passes_gate` /
/// `fails_gate` conditions and as `targetingGateID`, segments in `passes_segment` /
/// `fails_segment` conditions, a layer as `layerID`.
pub fn named_by(doc: &Value) -> Vec<(String, Kind, String)> {
    let mut named = Vec::new();
    let rules = doc["rules"].as_array().into_iter().flatten();
    for (i, rule) in rules.enumerate() {
        let conditions = rule["conditions"].as_array().into_iter().flatten();
        for (j, c) in conditions.enumerate() {
            let kind = match c["type"].as_str() {
                Some("passes_gate" | "fails_gate") => Kind::Gate,
                Some("passes_segment" | "fails_segment") => Kind::Segment,
                _ => continue,
            };
            let target = match &c["targetValue"] {
                Value::Array(list) => list.first(),
                single => Some(single),
            };
            if let Some(target) = target.and_then(Value::as_str) {
                let at = format!("rules[{i}].conditions[{j}].targetValue");
                named.push((at, kind, target.to_owned()));
            }
        }
    }
    for (field, kind) in [("targetingGateID", Kind::Gate), ("layerID", Kind::Layer)] {
        if let Some(target) = doc[field].as_str() {
            named.push((field.to_owned(), kind, target.to_owned()));
        }
    }
    named
}

/// Where live entities of `state` name the `kind` entity `name`, each as `experiment
/// button (targetingGateID)`. Deleting a named entity would silently change what they
/// answer.
pub fn references(state: &State, kind: Kind, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    for referrer in [
        Kind::Gate,
        Kind::DynamicConfig,
        Kind::Segment,
        Kind::Experiment,
    ] {
        for (referrer_name, _, doc) in state.live(referrer) {
            for (at, _, _) in named_by(doc)
                .into_iter()
                .filter(|(_, k, n)| *k == kind && n == name)
            {
                found.push(format!("{} {referrer_name} ({at})", referrer.as_str()));
            }
        }
    }
    found
}

/// A stored document as the API shows it: internal `_` fields removed.
pub fn public_view(doc: &Value) -> Value {
    match doc {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let body = json!({"rules": [{"name": "r", "conditions": [{"type": "user_id", "operator": "nope", "targetValue": ["a"]}]}]});
        let err = normalize(Kind::Gate, "g", &body, None).unwrap_err();
        assert_eq!(err[0].property, "rules[0].conditions[0].operator");
        let body = json!({"rules": [{"name": "r", "passPercentage": 101}]});
        let err = normalize(Kind::Gate, "g", &body, None).unwrap_err();
        assert_eq!(err[0].property, "rules[0].passPercentage");
        let err = normalize(Kind::Gate, "g", &json!({"colour": 1}), None).unwrap_err();
        assert_eq!(err[0].property, "colour");
        let body = json!({"groups": [{"name": "a", "size": 50}, {"name": "b", "size": 40}]});
        let err = normalize(Kind::Experiment, "e", &body, None).unwrap_err();
        assert_eq!(err[0].property, "groups");
    }

    #[test]
    fn edits_keep_salts_and_rule_ids() {
        let body = json!({"rules": [{"name": "r", "passPercentage": 50, "conditions": [{"type": "public"}]}]});
        let first = normalize(Kind::Gate, "g", &body, None).unwrap();
        let second = normalize(Kind::Gate, "g", &body, Some(&first)).unwrap();
        assert_eq!(first["_salt"], second["_salt"]);
        assert_eq!(first["rules"][0]["id"], second["rules"][0]["id"]);
        assert!(public_view(&second).get("_salt").is_none());
    }

    #[test]
    fn an_empty_rule_id_is_no_id_and_ids_are_unique() {
        let rule = |name: &str, id: &str| json!({"name": name, "id": id, "conditions": [{"type": "public", "operator": "", "targetValue": null}]});
        let body = json!({"rules": [rule("a", ""), rule("b", "")]});
        let first = normalize(Kind::Gate, "g", &body, None).unwrap();
        let ids = |doc: &Value| [0, 1].map(|i| doc["rules"][i]["id"].as_str().unwrap().to_owned());
        let [a, b] = ids(&first);
        assert!(!a.is_empty() && !b.is_empty() && a != b, "{a:?} {b:?}");
        // Sent again with empty ids (as a client that never read them back would), the
        // rules keep theirs by name.
        let second = normalize(Kind::Gate, "g", &body, Some(&first)).unwrap();
        assert_eq!(ids(&second), [a.clone(), b]);
        let body = json!({"rules": [rule("a", &a), rule("c", &a)]});
        let err = normalize(Kind::Gate, "g", &body, Some(&first)).unwrap_err();
        assert_eq!(err[0].property, "rules[1].id");
    }

    /// Statsig's documented create-gate example, and a body as its Terraform provider sends
    /// an experiment: their metadata is kept and shown back, what only a server sets is
    /// ignored, and a field Statsig does not have is still refused.
    #[test]
    fn statsig_shaped_bodies_are_taken_whole() {
        let gate = json!({"name": "a_verbose_gate", "idType": "userID", "isEnabled": false,
            "description": "helpful summary", "lastModifierName": "CONSOLE API",
            "lastModifierID": "5rfuqoxLIYTscuSaaCOlB8", "targetApps": ["my_app"], "team": "team",
            "rules": [{"name": "All Conditions", "passPercentage": 10, "environment": null,
                "conditions": [{"type": "public"},
                    {"type": "user_id", "targetValue": ["111", "222"], "operator": "any"}]}],
            "checksPerHour": 0, "tags": [], "monitoringMetrics": [{"name": "dau", "type": "user"}]});
        let doc = normalize(Kind::Gate, "a_verbose_gate", &gate, None).unwrap();
        assert_eq!(doc["team"], "team");
        assert_eq!(doc["monitoringMetrics"], gate["monitoringMetrics"]);
        assert_eq!(doc["isEnabled"], false);
        for server_set in ["lastModifierName", "lastModifierID", "checksPerHour"] {
            assert!(doc.get(server_set).is_none(), "{server_set} stored");
        }
        let experiment = json!({"name": "e", "allocation": 100.0, "bonferroniCorrection": false,
            "description": "", "hypothesis": "", "idType": "userID", "links": [],
            "primaryMetricTags": [], "secondaryMetricTags": [], "secondaryMetrics": [],
            "primaryMetrics": [{"name": "dau", "type": "user", "direction": "increase"}],
            "status": "active",
            "groups": [{"name": "control", "size": 50, "parameterValues": {}, "description": "c"},
                       {"name": "test", "size": 50, "parameterValues": {}}]});
        let doc = normalize(Kind::Experiment, "e", &experiment, None).unwrap();
        assert_eq!(doc["primaryMetrics"], experiment["primaryMetrics"]);
        assert_eq!(doc["groups"][0]["description"], "c");
        assert_eq!(doc["status"], "setup", "a start is its own endpoint");
        let mut disabled = experiment.clone();
        disabled["groups"][1]["disabled"] = true.into();
        let err = normalize(Kind::Experiment, "e", &disabled, None).unwrap_err();
        assert_eq!(err[0].property, "groups[1].disabled");
        let mut typo = gate.clone();
        typo["teem"] = "x".into();
        let err = normalize(Kind::Gate, "a_verbose_gate", &typo, None).unwrap_err();
        assert_eq!(err[0].property, "teem");
    }

    #[test]
    fn free_ranges() {
        assert_eq!(free_range(&[], 300), Some([0, 300]));
        assert_eq!(free_range(&[[0, 300]], 300), Some([300, 600]));
        assert_eq!(free_range(&[[300, 600]], 300), Some([0, 300]));
        assert_eq!(free_range(&[[100, 600]], 300), Some([600, 900]));
        assert_eq!(free_range(&[[0, 800]], 300), None);
    }
}
