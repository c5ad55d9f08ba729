//! Loading a `download_config_specs` payload (v1 or v2 shape) into a compiled [`Ruleset`],
//! and writing it back out in either shape.
//!
//! Both shapes are first normalized into the v2 document (maps keyed by name, conditions in
//! `condition_map`), which is kept for re-serialization; evaluation uses the compiled form.

use std::fmt;
use std::sync::Arc;

use ahash::{AHashMap, AHashSet};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::condition::{Condition, Kind, Name};
use crate::id_lists::IdLists;
use crate::initialize::{needs_escape, HashAlgorithm};
use crate::param_store::ParamStore;
use crate::value::DynValue;

/// The three spec tables of a ruleset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecKind {
    /// `feature_gates` (gates, segments, holdouts).
    Gate,
    /// `dynamic_configs` (dynamic configs, experiments, autotunes).
    Config,
    /// `layer_configs`.
    Layer,
}

impl SpecKind {
    const ALL: [SpecKind; 3] = [SpecKind::Gate, SpecKind::Config, SpecKind::Layer];

    /// The payload key of this table.
    pub fn key(self) -> &'static str {
        match self {
            SpecKind::Gate => "feature_gates",
            SpecKind::Config => "dynamic_configs",
            SpecKind::Layer => "layer_configs",
        }
    }
}

/// A payload that could not be loaded at all. (A single malformed spec is skipped instead and
/// reported in [`Ruleset::warnings`], as Statsig's core SDK does.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesetError(pub String);

impl fmt::Display for RulesetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid ruleset: {}", self.0)
    }
}

impl std::error::Error for RulesetError {}

/// A compiled rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub id: Box<str>,
    /// The salt hashed for the pass percentage (the rule id when `salt` is absent).
    pub salt: Box<str>,
    pub pass_percentage: f64,
    /// Indexes into [`Ruleset::conditions`]; None for an id missing from `condition_map`.
    pub conditions: Vec<Option<u32>>,
    pub return_value: Value,
    pub return_bool: bool,
    pub id_type: Name,
    pub group_name: Option<Box<str>>,
    /// The group name as a condition value, for `experiment_group` conditions that read it.
    pub group_value: Option<DynValue>,
    pub is_experiment_group: Option<bool>,
    /// `configDelegate`, with its index among dynamic configs when it exists.
    pub config_delegate: Option<(Box<str>, Option<u32>)>,
    /// This rule's number among all the ruleset's rules (per-user memo tables index by it).
    pub slot: u32,
}

/// One config mapping (an entry of the payload's `overrides` list for a spec name): a user
/// who passes one of its rules gets the answer of another spec of the same table, as
/// Statsig's SDKs evaluate it.
#[derive(Debug)]
pub(crate) struct Mapping {
    /// `new_config_name`: the spec answered instead.
    pub new_name: Box<str>,
    /// The table of the spec mapped from, which is the target's too.
    pub kind: SpecKind,
    /// The target's index in it (None: not in the payload, the mapping is skipped).
    pub target: Option<u32>,
    /// `rules`: each an `override_rules` rule (None: no rule of that name) and its
    /// `start_time` (ms; the rule is skipped before it).
    pub rules: Vec<(i64, Option<Rule>)>,
}

/// A compiled spec (gate, config, experiment or layer).
#[derive(Debug)]
pub(crate) struct Spec {
    pub name: Box<str>,
    pub entity: Box<str>,
    pub salt: Box<str>,
    pub enabled: bool,
    pub default_value: Value,
    pub default_bool: bool,
    pub id_type: Box<str>,
    pub rules: Vec<Rule>,
    pub is_active: Option<bool>,
    pub has_shared_params: Option<bool>,
    pub explicit_parameters: Option<Vec<Box<str>>>,
    pub version: Option<i64>,
    pub target_app_ids: Option<AHashSet<Box<str>>>,
    /// `useNewLayerEval` on a layer: every passing rule contributes parameters.
    pub new_layer_eval: bool,
    /// Config mappings (`overrides`) from this spec's name, tried in order before its rules.
    pub mappings: Vec<Mapping>,
    /// No spec of this name is in the payload, only mappings from it: answered through them
    /// or as unrecognized, and left out of [`Ruleset::names`] and initialize responses.
    pub mapping_only: bool,
    /// The name under djb2 and sha256, for initialize responses.
    pub hashed_names: [Box<str>; 2],
}

impl Spec {
    /// Whether none of the strings an initialize response takes from this spec needs
    /// escaping (hashed names are digits or base64, so only the name in clear counts).
    fn is_plain_text(&self) -> bool {
        let plain = |s: &str| !needs_escape(s);
        plain(&self.name)
            && plain(&self.id_type)
            && self.explicit_parameters.iter().flatten().all(|p| plain(p))
            && self.rules.iter().all(|r| {
                plain(&r.id)
                    && r.group_name.as_deref().is_none_or(plain)
                    && r.config_delegate.as_ref().is_none_or(|(d, _)| plain(d))
            })
    }

    pub fn hashed_name(&self, hash: HashAlgorithm) -> &str {
        match hash {
            HashAlgorithm::Djb2 => &self.hashed_names[0],
            HashAlgorithm::Sha256 => &self.hashed_names[1],
            HashAlgorithm::None => &self.name,
        }
    }
}

/// A compiled ruleset: immutable, shared by every request through one atomic pointer.
#[derive(Debug)]
pub struct Ruleset {
    /// The payload's `time` (ms): its version, compared with SDKs' `sinceTime`.
    pub time: i64,
    /// Each table's specs, in payload order, then the mapping-only ones.
    pub(crate) specs: [Vec<Spec>; 3],
    /// How many specs of each table are in the payload (the rest are mapping-only).
    pub(crate) listed: [usize; 3],
    pub(crate) index: [AHashMap<Box<str>, u32>; 3],
    pub(crate) conditions: Vec<Condition>,
    /// How many rules all specs hold ([`Rule::slot`] runs below it).
    pub(crate) rule_count: usize,
    /// `app_id`: the value `target_app` conditions compare when the caller gives none.
    pub(crate) app_id: Option<DynValue>,
    /// `{"tier": default_environment}`: the environment of users that carry none.
    pub(crate) default_environment: AHashMap<String, DynValue>,
    /// The same as JSON text, for the logged user (None when there is none).
    pub(crate) default_environment_text: Option<Box<RawValue>>,
    /// The ID lists `in_segment_list` conditions look in (none until set).
    pub(crate) id_lists: Arc<IdLists>,
    /// No spec name, nested gate name, rule id, id type, group name, explicit parameter or
    /// delegate name needs JSON escaping (nearly always so): initialize responses then copy
    /// them as they are.
    pub(crate) plain_text: bool,
    /// `param_stores`, ready for initialize responses.
    pub(crate) param_stores: Vec<ParamStore>,
    /// The normalized v2 document, for re-serialization.
    doc: Map<String, Value>,
    warnings: Vec<String>,
}

impl Ruleset {
    /// Parses and compiles a payload in either shape.
    pub fn from_slice(bytes: &[u8]) -> Result<Ruleset, RulesetError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| RulesetError(format!("not JSON: {e}")))?;
        Ruleset::from_value(value)
    }

    /// Compiles an already parsed payload in either shape.
    pub fn from_value(value: Value) -> Result<Ruleset, RulesetError> {
        let Value::Object(top) = value else {
            return Err(RulesetError("the payload must be a JSON object".into()));
        };
        let doc = normalize(top)?;
        compile(doc)
    }

    /// Specs that were skipped at load, each with the reason.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Names of the specs in one table, in payload order.
    pub fn names(&self, kind: SpecKind) -> impl Iterator<Item = &str> {
        self.listed_specs(kind).iter().map(|s| &*s.name)
    }

    /// The specs of one table that are in the payload (not the mapping-only ones).
    pub(crate) fn listed_specs(&self, kind: SpecKind) -> &[Spec] {
        &self.specs[kind as usize][..self.listed[kind as usize]]
    }

    /// Replaces the ID lists. They are shared, not copied: a ruleset recompiled for a specs
    /// change keeps the lists it had without hashing their ids again.
    pub fn set_id_lists(&mut self, lists: Arc<IdLists>) {
        self.id_lists = lists;
    }

    pub(crate) fn lookup(&self, kind: SpecKind, name: &str) -> Option<u32> {
        self.index[kind as usize].get(name).copied()
    }

    pub(crate) fn spec(&self, kind: SpecKind, idx: u32) -> &Spec {
        &self.specs[kind as usize][idx as usize]
    }

    /// The ruleset in the dcs-v2 shape that Statsig's core SDKs parse.
    pub fn to_v2(&self) -> Value {
        let mut doc = self.doc.clone();
        doc.insert("has_updates".into(), Value::Bool(true));
        doc.insert("time".into(), self.time.into());
        doc.insert("response_format".into(), "dcs-v2".into());
        Value::Object(doc)
    }

    /// The ruleset in the dcs-v1 shape the legacy SDKs parse (lists of named specs with inline
    /// conditions, and `layers`).
    pub fn to_v1(&self) -> Value {
        let empty = Map::new();
        let condition_map = self
            .doc
            .get("condition_map")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut out = Map::new();
        for (key, value) in &self.doc {
            if !matches!(
                key.as_str(),
                "feature_gates"
                    | "dynamic_configs"
                    | "layer_configs"
                    | "condition_map"
                    | "experiment_to_layer"
            ) {
                out.insert(key.clone(), value.clone());
            }
        }
        if let Some(Value::Object(rules)) = out.get_mut("override_rules") {
            for rule in rules.values_mut() {
                inline_conditions(rule, condition_map);
            }
        }
        for kind in SpecKind::ALL {
            let specs = self.doc.get(kind.key()).and_then(Value::as_object);
            let list = specs
                .into_iter()
                .flatten()
                .map(|(name, spec)| inline_spec(name, spec, condition_map))
                .collect();
            out.insert(kind.key().into(), Value::Array(list));
        }
        let mut layers: Map<String, Value> = self
            .names(SpecKind::Layer)
            .map(|name| (name.to_owned(), Value::Array(vec![])))
            .collect();
        if let Some(Value::Object(e2l)) = self.doc.get("experiment_to_layer") {
            for (experiment, layer) in e2l {
                let Some(layer) = layer.as_str() else {
                    continue;
                };
                let entry = layers.entry(layer).or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(list) = entry {
                    list.push(experiment.clone().into());
                }
            }
        }
        out.insert("layers".into(), Value::Object(layers));
        out.insert("has_updates".into(), Value::Bool(true));
        out.insert("time".into(), self.time.into());
        out.insert("response_format".into(), "dcs-v1".into());
        Value::Object(out)
    }
}

fn inline_spec(name: &str, spec: &Value, condition_map: &Map<String, Value>) -> Value {
    let mut spec = spec.clone();
    if let Value::Object(obj) = &mut spec {
        obj.insert("name".into(), name.into());
        if let Some(Value::Array(rules)) = obj.get_mut("rules") {
            for rule in rules {
                inline_conditions(rule, condition_map);
            }
        }
    }
    spec
}

/// Replaces a rule's condition ids with the conditions (the v1 shape).
fn inline_conditions(rule: &mut Value, condition_map: &Map<String, Value>) {
    if let Some(Value::Array(conds)) = rule.get_mut("conditions") {
        for c in conds.iter_mut() {
            if let Some(full) = c.as_str().and_then(|id| condition_map.get(id)) {
                *c = full.clone();
            }
        }
    }
}

/// Moves a v1 rule's inline conditions into `condition_map`, leaving their ids.
fn intern_conditions(rule: &mut Value, condition_map: &mut Map<String, Value>) {
    if let Some(Value::Array(conds)) = rule.get_mut("conditions") {
        for c in conds.iter_mut() {
            let id = condition_id(c);
            condition_map.insert(id.clone(), c.take());
            *c = Value::String(id);
        }
    }
}

/// Turns either payload shape into the v2 document.
fn normalize(mut top: Map<String, Value>) -> Result<Map<String, Value>, RulesetError> {
    match top.get("time") {
        Some(Value::Number(n)) if n.as_i64().is_some() || n.as_f64().is_some() => {}
        Some(_) => return Err(RulesetError("`time` must be a number (ms)".into())),
        None => return Err(RulesetError("`time` is missing".into())),
    }
    let is_v1 = SpecKind::ALL
        .iter()
        .any(|k| matches!(top.get(k.key()), Some(Value::Array(_))));
    if !is_v1 {
        for key in [
            "feature_gates",
            "dynamic_configs",
            "layer_configs",
            "condition_map",
        ] {
            match top.get(key) {
                Some(Value::Object(_)) => {}
                None => {
                    top.insert(key.into(), Value::Object(Map::new()));
                }
                Some(_) => return Err(RulesetError(format!("`{key}` must be an object"))),
            }
        }
        if !matches!(top.get("experiment_to_layer"), Some(Value::Object(_))) {
            top.insert("experiment_to_layer".into(), Value::Object(Map::new()));
        }
        return Ok(top);
    }

    let mut condition_map = Map::new();
    for kind in SpecKind::ALL {
        let list = match top.remove(kind.key()) {
            Some(Value::Array(list)) => list,
            None => vec![],
            Some(_) => {
                return Err(RulesetError(format!(
                    "`{}` must be a list in a v1 payload",
                    kind.key()
                )))
            }
        };
        let mut map = Map::new();
        for spec in list {
            let Value::Object(mut spec) = spec else {
                continue;
            };
            let Some(Value::String(name)) = spec.remove("name") else {
                continue;
            };
            // v1 SDKs answer a disabled spec with its default before reading its rules; the v2
            // shape says the same by carrying no rules (as Statsig's own v2 payloads do).
            if spec.get("enabled") == Some(&Value::Bool(false)) {
                spec.insert("rules".into(), Value::Array(vec![]));
            }
            if let Some(Value::Array(rules)) = spec.get_mut("rules") {
                for rule in rules {
                    intern_conditions(rule, &mut condition_map);
                }
            }
            map.insert(name, Value::Object(spec));
        }
        top.insert(kind.key().into(), Value::Object(map));
    }
    let mut experiment_to_layer = Map::new();
    if let Some(Value::Object(layers)) = top.remove("layers") {
        for (layer, experiments) in layers {
            for e in experiments.as_array().into_iter().flatten() {
                if let Some(e) = e.as_str() {
                    experiment_to_layer.insert(e.into(), layer.clone().into());
                }
            }
        }
    }
    if let Some(Value::Object(rules)) = top.get_mut("override_rules") {
        for rule in rules.values_mut() {
            intern_conditions(rule, &mut condition_map);
        }
    }
    top.insert("condition_map".into(), Value::Object(condition_map));
    top.insert(
        "experiment_to_layer".into(),
        Value::Object(experiment_to_layer),
    );
    Ok(top)
}

/// A stable id for an inline v1 condition: identical conditions share one entry.
fn condition_id(c: &Value) -> String {
    crate::hash::unit_hash(&[&c.to_string()]).to_string()
}

fn compile(doc: Map<String, Value>) -> Result<Ruleset, RulesetError> {
    let time = doc
        .get("time")
        .and_then(|t| t.as_i64().or_else(|| t.as_f64().map(|f| f as i64)))
        .unwrap_or(0);
    let mut warnings = Vec::new();

    // Names first, so nested gates and delegates resolve to indexes.
    let mut index: [AHashMap<Box<str>, u32>; 3] = Default::default();
    let empty = Map::new();
    let table = |kind: SpecKind| {
        doc.get(kind.key())
            .and_then(Value::as_object)
            .unwrap_or(&empty)
    };
    for kind in SpecKind::ALL {
        for (name, spec) in table(kind) {
            match spec_problem(spec) {
                None => {
                    let next = index[kind as usize].len() as u32;
                    index[kind as usize].insert(name.as_str().into(), next);
                }
                Some(problem) => warnings.push(format!("{}.{name}: {problem}", kind.key())),
            }
        }
    }
    let listed = index.each_ref().map(|table| table.len());
    let overrides = doc.get("overrides").and_then(Value::as_object);
    let override_rules = override_rules(&doc, &mut warnings);
    // A mapping may come from a name no spec has (a spec replaced by another): it is indexed
    // in each table where one of its targets is, so nested gates resolve to it too.
    let mut mapping_only_names: [Vec<&str>; 3] = Default::default();
    for (name, mappings) in overrides.into_iter().flatten() {
        for kind in SpecKind::ALL {
            let table = &index[kind as usize];
            let targets_here = mapping_list(mappings).any(|(target, _)| {
                table
                    .get(target)
                    .is_some_and(|&i| (i as usize) < listed[kind as usize])
            });
            if targets_here && !table.contains_key(name.as_str()) {
                let next = table.len() as u32;
                index[kind as usize].insert(name.as_str().into(), next);
                mapping_only_names[kind as usize].push(name);
            }
        }
    }

    let mut condition_index: AHashMap<&str, u32> = AHashMap::new();
    let mut conditions = Vec::new();
    let spec_index = |kind: SpecKind, name: &str| index[kind as usize].get(name).copied();
    if let Some(map) = doc.get("condition_map").and_then(Value::as_object) {
        for (id, raw) in map {
            condition_index.insert(id, conditions.len() as u32);
            conditions.push(Condition::compile(raw, &spec_index));
        }
    }

    let configs = &index[SpecKind::Config as usize];
    let compile_rule = |rule: &Value| compile_rule(rule, &condition_index, configs);
    let mut specs: [Vec<Spec>; 3] = Default::default();
    let no_spec = json!({"salt": "", "rules": []});
    for kind in SpecKind::ALL {
        // The specs indexed above, in the same order (a skipped spec's name may since have
        // been indexed as mapping-only).
        let in_payload = table(kind)
            .iter()
            .filter(|(_, spec)| spec_problem(spec).is_none());
        let in_payload = in_payload.map(|(name, spec)| (name.as_str(), spec));
        let mapping_only = mapping_only_names[kind as usize]
            .iter()
            .map(|&name| (name, &no_spec));
        for (i, (name, spec)) in in_payload.chain(mapping_only).enumerate() {
            let mut compiled = compile_spec(name, spec, &compile_rule);
            // statsig-rust reads the flag on layers only.
            compiled.new_layer_eval &= kind == SpecKind::Layer;
            compiled.mapping_only = i >= listed[kind as usize];
            if let Some(mappings) = overrides.and_then(|o| o.get(name)) {
                compiled.mappings = mapping_list(mappings)
                    .map(|(new_name, rules)| Mapping {
                        new_name: new_name.into(),
                        kind,
                        target: index[kind as usize].get(new_name).copied(),
                        rules: rules
                            .map(|(start, rule)| {
                                (start, override_rules.get(rule).map(|r| compile_rule(r)))
                            })
                            .collect(),
                    })
                    .collect();
            }
            specs[kind as usize].push(compiled);
        }
    }

    let mut rule_count = 0;
    for spec in specs.iter_mut().flatten() {
        let mapping_rules = spec.mappings.iter_mut().flat_map(|m| &mut m.rules);
        let mapping_rules = mapping_rules.filter_map(|(_, rule)| rule.as_mut());
        for rule in spec.rules.iter_mut().chain(mapping_rules) {
            rule.slot = rule_count as u32;
            rule_count += 1;
        }
    }

    let str_field = |key: &str| doc.get(key).and_then(Value::as_str);
    let mut default_environment = AHashMap::new();
    let mut default_environment_text = None;
    if let Some(tier) = str_field("default_environment") {
        default_environment.insert("tier".to_owned(), shared_value(tier));
        default_environment_text = serde_json::value::to_raw_value(&json!({ "tier": tier })).ok();
    }
    let plain_text = specs.iter().flatten().all(Spec::is_plain_text)
        && conditions.iter().all(|c| match &c.kind {
            Kind::NestedGate { name, .. } => !needs_escape(name),
            _ => true,
        });
    let param_stores = ParamStore::compile_all(&doc, &mut warnings);
    Ok(Ruleset {
        time,
        plain_text,
        param_stores,
        specs,
        listed,
        conditions,
        rule_count,
        app_id: str_field("app_id").map(shared_value),
        default_environment,
        default_environment_text,
        id_lists: Arc::default(),
        index,
        doc,
        warnings,
    })
}

/// Why a spec cannot be compiled, checked before indexing so a bad spec is skipped whole.
fn spec_problem(spec: &Value) -> Option<&'static str> {
    let Some(obj) = spec.as_object() else {
        return Some("not an object");
    };
    if !obj.get("salt").is_some_and(Value::is_string) {
        return Some("`salt` must be a string");
    }
    if !obj.get("rules").is_some_and(Value::is_array) {
        return Some("`rules` must be a list");
    }
    obj["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(rule_problem)
}

/// Why a rule cannot be compiled.
fn rule_problem(rule: &Value) -> Option<&'static str> {
    if !rule.get("id").is_some_and(Value::is_string) {
        return Some("every rule needs a string `id`");
    }
    if !rule.get("passPercentage").is_some_and(Value::is_number) {
        return Some("every rule needs a numeric `passPercentage`");
    }
    if !rule.get("conditions").is_some_and(Value::is_array) {
        return Some("every rule needs a `conditions` list");
    }
    None
}

/// The payload's `override_rules` (the rules config mappings name) that can be compiled; the
/// others are reported and left out, so mappings naming them skip them.
fn override_rules<'d>(
    doc: &'d Map<String, Value>,
    warnings: &mut Vec<String>,
) -> AHashMap<&'d str, &'d Value> {
    let mut rules = AHashMap::new();
    for (name, rule) in doc
        .get("override_rules")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        match rule_problem(rule) {
            None => {
                rules.insert(name.as_str(), rule);
            }
            Some(problem) => {
                let problem = problem.replace("every rule needs", "needs");
                warnings.push(format!("override_rules.{name}: {problem}"));
            }
        }
    }
    rules
}

/// One name's config mappings as (`new_config_name`, its rules as (`start_time`,
/// `rule_name`)), entries of the wrong shape left out.
fn mapping_list(
    mappings: &Value,
) -> impl Iterator<Item = (&str, impl Iterator<Item = (i64, &str)>)> {
    mappings.as_array().into_iter().flatten().filter_map(|m| {
        let new_name = m.get("new_config_name")?.as_str()?;
        let rules = m
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let rules = rules.filter_map(|r| {
            let start = r.get("start_time").and_then(Value::as_i64).unwrap_or(0);
            Some((start, r.get("rule_name")?.as_str()?))
        });
        Some((new_name, rules))
    })
}

/// Compiles a rule already checked by [`rule_problem`].
fn compile_rule(
    rule: &Value,
    condition_index: &AHashMap<&str, u32>,
    configs: &AHashMap<Box<str>, u32>,
) -> Rule {
    let rs = |key: &str| rule.get(key).and_then(Value::as_str);
    let id: Box<str> = rs("id").unwrap_or("").into();
    let return_value = rule.get("returnValue").cloned().unwrap_or(Value::Null);
    Rule {
        salt: rs("salt").map(Into::into).unwrap_or_else(|| id.clone()),
        pass_percentage: rule["passPercentage"].as_f64().unwrap_or(0.0),
        conditions: rule["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c.as_str().and_then(|c| condition_index.get(c).copied()))
            .collect(),
        return_bool: return_value.as_bool() != Some(false),
        return_value,
        id_type: Name::new(rs("idType").unwrap_or("userID")),
        group_name: rs("groupName").map(Into::into),
        group_value: rs("groupName").map(shared_value),
        is_experiment_group: rule.get("isExperimentGroup").and_then(Value::as_bool),
        config_delegate: rs("configDelegate").map(|d| (d.into(), configs.get(d).copied())),
        id,
        slot: 0,
    }
}

fn compile_spec(name: &str, spec: &Value, compile_rule: &dyn Fn(&Value) -> Rule) -> Spec {
    let s = |key: &str| spec.get(key).and_then(Value::as_str);
    let b = |key: &str| spec.get(key).and_then(Value::as_bool);
    let default_value = spec.get("defaultValue").cloned().unwrap_or(Value::Null);
    let rules = spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(compile_rule)
        .collect();
    Spec {
        hashed_names: [
            HashAlgorithm::Djb2.hash(name).into(),
            HashAlgorithm::Sha256.hash(name).into(),
        ],
        name: name.into(),
        entity: s("entity").unwrap_or("").into(),
        salt: s("salt").unwrap_or("").into(),
        enabled: b("enabled").unwrap_or(true),
        default_bool: default_value.as_bool() == Some(true),
        default_value,
        id_type: s("idType").unwrap_or("userID").into(),
        rules,
        is_active: b("isActive"),
        has_shared_params: b("hasSharedParams"),
        explicit_parameters: spec
            .get("explicitParameters")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(Into::into).collect()),
        version: spec.get("version").and_then(Value::as_i64),
        target_app_ids: spec
            .get("targetAppIDs")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(Into::into).collect()),
        new_layer_eval: b("useNewLayerEval") == Some(true),
        mappings: Vec::new(),
        mapping_only: false,
    }
}

/// A value every request may read: its views computed now, so that no request waits on
/// another computing one.
fn shared_value(text: &str) -> DynValue {
    DynValue::from_text(text).with_all_views()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v1() -> Value {
        json!({
            "time": 5, "has_updates": true, "app_id": "web",
            "feature_gates": [
                {"name": "g", "type": "feature_gate", "salt": "s", "enabled": true, "defaultValue": false,
                 "idType": "userID", "entity": "feature_gate",
                 "rules": [{"id": "r", "name": "r", "passPercentage": 100, "returnValue": true,
                            "idType": "userID", "conditions": [{"type": "public", "idType": "userID"}]}]},
                {"name": "off", "type": "feature_gate", "salt": "s", "enabled": false, "defaultValue": false,
                 "idType": "userID", "entity": "feature_gate",
                 "rules": [{"id": "r", "passPercentage": 100, "returnValue": true, "idType": "userID",
                            "conditions": [{"type": "public", "idType": "userID"}]}]},
                {"name": "broken", "salt": 7, "rules": []}
            ],
            "dynamic_configs": [], "layer_configs": [], "layers": {"l": ["e"]}
        })
    }

    #[test]
    fn v1_normalizes_to_v2_and_back() {
        let rs = Ruleset::from_value(v1()).unwrap();
        assert_eq!(rs.warnings().len(), 1, "{:?}", rs.warnings());
        let v2 = rs.to_v2();
        assert_eq!(v2["condition_map"].as_object().unwrap().len(), 1);
        assert_eq!(v2["experiment_to_layer"]["e"], "l");
        assert_eq!(v2["feature_gates"]["off"]["rules"], json!([]));
        let back = rs.to_v1();
        assert_eq!(back["feature_gates"][0]["name"], "g");
        assert_eq!(
            back["feature_gates"][0]["rules"][0]["conditions"][0]["type"],
            "public"
        );
        assert_eq!(back["layers"]["l"], json!(["e"]));
        // Round trip through both shapes gives the same document.
        let again = Ruleset::from_value(back).unwrap().to_v2();
        assert_eq!(again, v2);
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        assert!(Ruleset::from_slice(b"{").is_err());
        assert!(Ruleset::from_slice(b"[]").is_err());
        assert!(Ruleset::from_slice(b"{\"feature_gates\": {}}").is_err());
        assert!(Ruleset::from_slice(b"{\"time\": \"x\"}").is_err());
        assert!(Ruleset::from_slice(b"{\"time\": 1, \"condition_map\": []}").is_err());
        let rs = Ruleset::from_slice(b"{\"time\": 1}").unwrap();
        assert_eq!(rs.names(SpecKind::Gate).count(), 0);
    }

    #[test]
    fn a_skipped_spec_with_mappings_is_mapping_only_and_the_others_keep_their_places() {
        let gate = |rule: &str| {
            json!({"salt": "s", "enabled": true, "defaultValue": false,
                   "rules": [{"id": rule, "passPercentage": 100, "returnValue": true,
                              "conditions": ["public"]}]})
        };
        let rs = Ruleset::from_value(json!({
            "time": 1,
            "condition_map": {"public": {"type": "public"}},
            "feature_gates": {"a_bad": {"rules": "not a list"}, "b": gate("b_rule"),
                              "c": gate("c_rule")},
            "override_rules": {"everyone": {"id": "everyone", "passPercentage": 100,
                                            "conditions": ["public"]},
                               "broken": {"passPercentage": 100}},
            "overrides": {"a_bad": [{"new_config_name": "c",
                                     "rules": [{"rule_name": "broken"}, {"rule_name": "everyone"}]}]}
        }))
        .unwrap();
        assert_eq!(rs.names(SpecKind::Gate).collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(rs.warnings().len(), 2, "{:?}", rs.warnings());
        let user = crate::User::from_json(&json!({"userID": "u"})).unwrap();
        let ctx = crate::EvalContext {
            user: &user,
            now_ms: 0,
            app_id: None,
        };
        for (name, rule_id, mapped) in [
            ("b", "b_rule", None),
            ("c", "c_rule", None),
            ("a_bad", "c_rule", Some("c")),
        ] {
            let e = rs.check_gate(name, &ctx);
            assert_eq!(
                (e.rule_id, e.override_config_name),
                (rule_id, mapped),
                "{name}"
            );
        }
    }
}
