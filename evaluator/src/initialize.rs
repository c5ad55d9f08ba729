//! The `/v1/initialize` response client SDKs read: every gate, config, experiment and layer
//! evaluated for one user, names hashed as the client asks, in the shape Statsig's core SDK
//! generates (`get_client_initialize_response`).

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::eval::{EvalContext, Evaluation, Outcome, Scratch, SecondaryExposure};
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
    /// Builds the initialize response body for one user, as JSON bytes ready to send.
    ///
    /// Written straight into one buffer (no intermediate JSON tree), with the spec names'
    /// hashes computed once when the ruleset loaded.
    pub fn client_initialize(&self, req: &InitializeRequest<'_>) -> Vec<u8> {
        let mut out = Writer::for_ruleset(self, 16 * 1024);
        let mut scratch = Scratch::for_one_user(self);
        out.raw("{");
        for (i, kind) in [SpecKind::Gate, SpecKind::Config, SpecKind::Layer]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                out.raw(",");
            }
            out.field(kind.key());
            out.raw("{");
            let mut first = true;
            for (idx, spec) in self.listed_specs(kind).iter().enumerate() {
                if !self.client_visible(spec, req.target_app) {
                    continue;
                }
                if !first {
                    out.raw(",");
                }
                first = false;
                let eval = self.evaluate_reusing(kind, idx as u32, &req.ctx, &mut scratch);
                let name = spec.hashed_name(req.hash);
                out.ruleset_str(name);
                out.raw(":");
                self.write_entry(&mut out, kind, spec, name, &eval, req.hash);
                scratch.recycle(eval);
            }
            out.raw("}");
        }
        out.raw(",\"time\":");
        out.raw(&self.time.to_string());
        out.raw(",\"has_updates\":true,\"hash_used\":");
        out.string(req.hash.as_str());
        out.raw(",\"user\":");
        out.json(&self.loggable_user(req.user_json));
        out.raw(",\"evaluated_keys\":");
        out.json(&evaluated_keys(req.user_json));
        out.raw(",\"sdkParams\":{},\"param_stores\":{");
        let visible = self
            .param_stores
            .iter()
            .filter(|s| s.visible_to(req.target_app));
        for (i, store) in visible.enumerate() {
            if i > 0 {
                out.raw(",");
            }
            out.raw(store.rendered(req.hash));
        }
        out.raw("}}");
        out.bytes
    }

    /// Segments and holdouts are never sent to clients; a key's target app limits the rest.
    fn client_visible(&self, spec: &Spec, target_app: Option<&str>) -> bool {
        if matches!(&*spec.entity, "segment" | "holdout") {
            return false;
        }
        match target_app {
            None => true,
            Some(app) => spec
                .target_app_ids
                .as_ref()
                .is_some_and(|apps| apps.contains(app)),
        }
    }

    /// One entry, in the shape of Statsig's core SDK for its kind: gate, dynamic config,
    /// experiment (entity `experiment`) or layer.
    fn write_entry(
        &self,
        out: &mut Writer,
        kind: SpecKind,
        spec: &Spec,
        name: &str,
        eval: &Evaluation<'_>,
        hash: HashAlgorithm,
    ) {
        out.raw("{");
        out.field("name");
        out.ruleset_str(name);
        out.str_field("rule_id", eval.rule_id);
        out.str_field("id_type", eval.id_type);
        out.raw(",");
        out.field("secondary_exposures");
        self.write_exposures(out, &eval.secondary_exposures, hash);
        out.raw(",");
        out.field("value");
        if kind == SpecKind::Gate {
            out.raw(if eval.bool_value { "true}" } else { "false}" });
            return;
        }
        match eval.json_value.as_deref() {
            // The core SDK writes an unsupported spec's missing value as null.
            _ if eval.outcome == Outcome::Unsupported => out.raw("null"),
            Some(v @ Value::Object(_)) => out.json(v),
            _ => out.raw("{}"),
        }
        out.str_field("group", eval.rule_id);
        out.bool_field(
            "is_device_based",
            matches!(eval.id_type, "stableID" | "stableid"),
        );
        let is_experiment = kind == SpecKind::Config && &*spec.entity == "experiment";
        if kind == SpecKind::Config && !is_experiment {
            out.bool_field("passed", eval.bool_value);
            out.raw("}");
            return;
        }
        if let Some(group_name) = eval.group_name {
            out.str_field("group_name", group_name);
        }
        let delegate = eval.config_delegate.filter(|d| !d.is_empty());
        if kind == SpecKind::Layer {
            out.raw(",");
            out.field("undelegated_secondary_exposures");
            let undelegated = eval
                .undelegated_secondary_exposures
                .as_deref()
                .unwrap_or(&[]);
            self.write_exposures(out, undelegated, hash);
            out.raw(",");
            out.field("explicit_parameters");
            out.ruleset_strs(eval.explicit_parameters.unwrap_or(&[]));
            if let Some(sources) = &eval.parameter_rule_ids {
                out.raw(",");
                out.field("parameter_rule_ids");
                for (i, (parameter, rule_id)) in sources.iter().enumerate() {
                    out.raw(if i == 0 { "{" } else { "," });
                    out.ruleset_str(parameter);
                    out.raw(":");
                    out.ruleset_str(rule_id);
                }
                out.raw(if sources.is_empty() { "{}" } else { "}" });
            }
            if let Some(delegate) = delegate {
                out.str_field(
                    "allocated_experiment_name",
                    &self.hashed_name(SpecKind::Config, delegate, hash),
                );
            }
        } else {
            if eval.is_in_layer {
                out.raw(",\"is_in_layer\":true");
            }
            if let Some(params) = eval.explicit_parameters {
                out.raw(",");
                out.field("explicit_parameters");
                out.ruleset_strs(params);
            }
        }
        if is_experiment || delegate.is_some() {
            out.bool_field("is_experiment_active", eval.is_experiment_active);
            out.bool_field("is_user_in_experiment", eval.is_experiment_group);
        }
        out.raw("}");
    }

    fn write_exposures(
        &self,
        out: &mut Writer,
        list: &[SecondaryExposure<'_>],
        hash: HashAlgorithm,
    ) {
        out.raw("[");
        for (i, e) in list.iter().enumerate() {
            if i > 0 {
                out.raw(",");
            }
            out.raw("{\"gate\":");
            match e.gate_index {
                Some(idx) => out.ruleset_str(self.spec(SpecKind::Gate, idx).hashed_name(hash)),
                None => out.ruleset_str(&self.hashed_name(SpecKind::Gate, e.gate, hash)),
            }
            out.raw(if e.gate_value {
                ",\"gateValue\":\"true\",\"ruleID\":"
            } else {
                ",\"gateValue\":\"false\",\"ruleID\":"
            });
            out.ruleset_str(e.rule_id);
            out.raw("}");
        }
        out.raw("]");
    }

    /// A spec name hashed, from the precomputed hashes when the spec exists.
    fn hashed_name<'a>(
        &'a self,
        kind: SpecKind,
        name: &'a str,
        hash: HashAlgorithm,
    ) -> Cow<'a, str> {
        match self.lookup(kind, name) {
            Some(idx) => Cow::Borrowed(self.spec(kind, idx).hashed_name(hash)),
            None if hash == HashAlgorithm::None => Cow::Borrowed(name),
            None => Cow::Owned(hash.hash(name)),
        }
    }

    /// The user as logged and echoed: no `privateAttributes`, and the ruleset's default
    /// environment when the user carries none.
    pub fn loggable_user(&self, user_json: &Value) -> Value {
        let mut user = user_json.as_object().cloned().unwrap_or_default();
        user.shift_remove("privateAttributes");
        if !user.contains_key("statsigEnvironment") {
            if let Some(env) = self.default_environment_json() {
                user.insert("statsigEnvironment".into(), env);
            }
        }
        Value::Object(user)
    }

    /// [`Ruleset::loggable_user`] written from the user's JSON text, entry by entry in the
    /// user's order, without building a tree: the front door logs it with every exposure.
    /// The result is JSON text (keys escaped, values copied from the validated input), the
    /// input itself when it is already loggable (the common case: no copy).
    /// Anything but an object logs as `{}` (callers have parsed it as a [`crate::User`]).
    pub fn loggable_user_text<'u>(&self, user: &'u RawValue) -> Cow<'u, str> {
        if let Some(text) = self.loggable_as_sent(user.get()) {
            return text;
        }
        let mut out = Writer::new(user.get().len() + 40);
        let mut de = serde_json::Deserializer::from_str(user.get());
        let has_environment = de
            .deserialize_map(LoggableWriter { out: &mut out })
            .unwrap_or_else(|_| {
                out.bytes.clear();
                out.bytes.push(b'{');
                false
            });
        if let (false, Some(env)) = (has_environment, &self.default_environment_text) {
            if out.bytes.len() > 1 {
                out.bytes.push(b',');
            }
            out.field("statsigEnvironment");
            out.raw(env.get());
        }
        out.bytes.push(b'}');
        // Built from UTF-8 parts; the lossy conversion never replaces anything.
        Cow::Owned(
            String::from_utf8(out.bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()),
        )
    }

    /// The common case without rewriting: a compact object (as JSON.stringify and serde
    /// write it) with no `privateAttributes` is already its loggable text, the default
    /// environment appended when it has one to add. Compact and free of backslashes, the text
    /// holds a name only as a key or inside a plain string, so the substring checks cannot
    /// miss a top-level key; a name anywhere (even nested) sends it down the rewriting path.
    fn loggable_as_sent<'u>(&self, text: &'u str) -> Option<Cow<'u, str>> {
        // Searchers built once; every byte checked without an early exit (the loop runs on
        // vector registers): this runs for every evaluation request.
        static PRIVATE: LazyLock<Finder<'static>> =
            LazyLock::new(|| Finder::new("privateAttributes"));
        static ENVIRONMENT: LazyLock<Finder<'static>> =
            LazyLock::new(|| Finder::new("statsigEnvironment"));
        let compact = text.bytes().fold(true, |compact, b| {
            compact & !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\\')
        });
        let plain = text.starts_with('{') && compact && PRIVATE.find(text.as_bytes()).is_none();
        if !plain {
            return None;
        }
        let Some(env) = &self.default_environment_text else {
            return Some(Cow::Borrowed(text));
        };
        if ENVIRONMENT.find(text.as_bytes()).is_some() {
            return None;
        }
        let fields = &text[..text.len() - 1];
        let separator = if fields.len() > 1 { "," } else { "" };
        Some(Cow::Owned(
            [fields, separator, "\"statsigEnvironment\":", env.get(), "}"].concat(),
        ))
    }

    fn default_environment_json(&self) -> Option<Value> {
        let env = self.default_environment_text.as_ref()?;
        serde_json::from_str(env.get()).ok()
    }
}

/// Copies a user object's entries except `privateAttributes` into `out` (opened with `{`,
/// left open); answers whether the user has a `statsigEnvironment`.
struct LoggableWriter<'o> {
    out: &'o mut Writer,
}

impl<'de> Visitor<'de> for LoggableWriter<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a user object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        self.out.bytes.push(b'{');
        let mut has_environment = false;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value: &RawValue = map.next_value()?;
            match &*key.0 {
                "privateAttributes" => continue,
                "statsigEnvironment" => has_environment = true,
                _ => {}
            }
            if self.out.bytes.len() > 1 {
                self.out.bytes.push(b',');
            }
            self.out.key(&key.0);
            self.out.raw(value.get());
        }
        Ok(has_environment)
    }
}

/// An object key, borrowed from the JSON text unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
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

/// Whether serde_json would escape something in `s`.
pub(crate) fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| NEEDS_ESCAPE[b as usize])
}

/// The bytes serde_json escapes inside a string: control characters, `"` and `\`. A table
/// lookup per byte is cheaper than three comparisons, and most strings written are names.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// A JSON byte writer: structure is written by hand, strings and values escaped by serde_json.
struct Writer {
    bytes: Vec<u8>,
    /// Every string of the ruleset was found free of escapes at load
    /// ([`Ruleset::plain_text`]), so [`Writer::ruleset_str`] need not look at each byte.
    plain_ruleset: bool,
}

impl Writer {
    fn new(capacity: usize) -> Writer {
        Writer {
            bytes: Vec::with_capacity(capacity),
            plain_ruleset: false,
        }
    }

    fn for_ruleset(rs: &Ruleset, capacity: usize) -> Writer {
        Writer {
            plain_ruleset: rs.plain_text,
            ..Writer::new(capacity)
        }
    }

    fn raw(&mut self, s: &str) {
        self.bytes.extend_from_slice(s.as_bytes());
    }

    /// `s` as a JSON string, escaped exactly as serde_json escapes (tested below). Names,
    /// rule ids and keys almost never need escaping, and copying them straight is what keeps
    /// a 100-spec response from spending a quarter of its time in the escaper.
    fn string(&mut self, s: &str) {
        if !needs_escape(s) {
            self.quoted(s);
        } else {
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut self.bytes, s);
        }
    }

    /// A name, rule id, id type, group name or parameter taken from the ruleset.
    fn ruleset_str(&mut self, s: &str) {
        if self.plain_ruleset {
            self.quoted(s);
        } else {
            self.string(s);
        }
    }

    /// `s` between quotes, as is: the caller knows it needs no escaping.
    fn quoted(&mut self, s: &str) {
        self.bytes.reserve(s.len() + 2);
        self.bytes.push(b'"');
        self.bytes.extend_from_slice(s.as_bytes());
        self.bytes.push(b'"');
    }

    fn key(&mut self, k: &str) {
        self.string(k);
        self.bytes.push(b':');
    }

    /// `"key":` for a key named in this code (never needs escaping).
    fn field(&mut self, key: &'static str) {
        debug_assert!(!needs_escape(key));
        self.quoted(key);
        self.bytes.push(b':');
    }

    fn boolean(&mut self, b: bool) {
        self.raw(if b { "true" } else { "false" });
    }

    /// `,"key":"value"` (a field after the first) with a value from the ruleset.
    fn str_field(&mut self, key: &'static str, value: &str) {
        self.bytes.push(b',');
        self.field(key);
        self.ruleset_str(value);
    }

    /// `,"key":true|false` (a field after the first).
    fn bool_field(&mut self, key: &'static str, value: bool) {
        self.bytes.push(b',');
        self.field(key);
        self.boolean(value);
    }

    fn json(&mut self, v: &Value) {
        let _ = serde_json::to_writer(&mut self.bytes, v);
    }

    /// A list of ruleset strings (explicit parameters).
    fn ruleset_strs(&mut self, items: &[Box<str>]) {
        self.bytes.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.bytes.push(b',');
            }
            self.ruleset_str(item);
        }
        self.bytes.push(b']');
    }
}

/// The initialize body for the user `{"userID": "u"}` at time 0, for unit tests.
#[cfg(test)]
pub(crate) fn initialize_for_user_u(
    rs: &Ruleset,
    hash: HashAlgorithm,
    target_app: Option<&str>,
) -> Vec<u8> {
    let user_json = serde_json::json!({"userID": "u"});
    let user = crate::User::from_json(&user_json).unwrap();
    rs.client_initialize(&InitializeRequest {
        ctx: EvalContext {
            user: &user,
            now_ms: 0,
            app_id: None,
        },
        user_json: &user_json,
        hash,
        target_app,
    })
}

#[cfg(test)]
mod tests {
    use super::{initialize_for_user_u, Writer};
    use crate::{HashAlgorithm, Ruleset};
    use serde_json::value::RawValue;
    use serde_json::{json, Value};

    #[test]
    fn the_loggable_user_reads_the_same_from_text_and_from_a_tree() {
        let plain = Ruleset::from_value(json!({"time": 1})).unwrap();
        let staged =
            Ruleset::from_value(json!({"time": 1, "default_environment": "staging"})).unwrap();
        let users = [
            json!({}),
            json!({"userID": "u", "privateAttributes": {"ssn": "x"}, "email": "e", "custom": {"a": [1, {"b": null}]}}),
            json!({"privateAttributes": {"ssn": "x"}}),
            json!({"userID": 7, "statsigEnvironment": {"tier": "prod"}, "weird\"key\u{e9}": "\u{1F600}\\"}),
            // Compact and without private attributes: logged as sent.
            json!({"userID": "u", "email": "e", "custom": {"level": 3, "tags": ["a", "b"]}}),
            json!({"userAgent": "Mozilla/5.0 (X11; Linux)", "userID": "u"}),
            // The names nested deeper: only the top level is dropped or counted.
            json!({"userID": "u", "custom": {"privateAttributes": 1, "statsigEnvironment": 2}}),
            json!({"custom": {"statsigEnvironment": {"tier": "dev"}}}),
        ];
        for rs in [&plain, &staged] {
            for user in &users {
                let text = RawValue::from_string(user.to_string()).unwrap();
                let expected = rs.loggable_user(user).to_string();
                let written = rs.loggable_user_text(&text);
                assert_eq!(written, expected, "{user}");
                serde_json::from_str::<serde_json::Value>(&written).unwrap();
            }
        }
        // Which path each takes (both checked against the tree above).
        assert!(staged.loggable_as_sent(&users[4].to_string()).is_some());
        for rewritten in [1, 3, 5, 6, 7] {
            assert!(staged
                .loggable_as_sent(&users[rewritten].to_string())
                .is_none());
        }
        let text = RawValue::from_string("{ \"privateAttributes\" : 1 , \"a\" : [ 1 ] }".into());
        assert_eq!(plain.loggable_user_text(&text.unwrap()), "{\"a\":[ 1 ]}");
        let not_an_object = RawValue::from_string("[1]".into()).unwrap();
        assert_eq!(
            staged.loggable_user_text(&not_an_object),
            "{\"statsigEnvironment\":{\"tier\":\"staging\"}}"
        );
    }

    /// Every string an initialize response copies from the ruleset, one at a time holding
    /// characters JSON must escape: the load-time check must notice each, and the response
    /// must still be valid JSON carrying the string intact.
    #[test]
    fn ruleset_strings_that_need_escaping_are_escaped_wherever_they_come_from() {
        let odd = "q\"b\\s\u{1}";
        let places = [
            "",
            "gate name",
            "nested gate",
            "rule id",
            "id type",
            "group name",
            "parameter",
            "delegate",
        ];
        for place in places {
            let at = |here: &str, plain: &str| if place == here { odd } else { plain }.to_owned();
            let experiment = at("delegate", "exp");
            let doc = json!({
                "time": 1,
                "condition_map": {
                    "c_public": {"type": "public"},
                    "c_nested": {"type": "pass_gate", "targetValue": at("nested gate", "other")}
                },
                "feature_gates": {at("gate name", "gate"): {
                    "salt": "s1", "enabled": true, "defaultValue": false, "idType": at("id type", "userID"),
                    "rules": [
                        {"id": "first", "passPercentage": 100, "returnValue": true, "conditions": ["c_nested"]},
                        {"id": at("rule id", "second"), "returnValue": true, "passPercentage": 100, "conditions": ["c_public"]}
                    ]},
                    // A gate with no exposure of its own: an unknown nested gate logs none.
                    at("nested gate", "other"): {"salt": "s4", "enabled": true, "defaultValue": false, "rules": []}},
                "dynamic_configs": {experiment.clone(): {
                    "salt": "s2", "enabled": true, "defaultValue": {}, "idType": "userID",
                    "entity": "experiment", "isActive": true, "hasSharedParams": true,
                    "explicitParameters": [at("parameter", "p")],
                    "rules": [{"id": "r2", "groupName": at("group name", "Control"), "isExperimentGroup": true,
                               "returnValue": {"p": 1}, "passPercentage": 100, "conditions": ["c_public"]}]}},
                "layer_configs": {"layer": {
                    "salt": "s3", "enabled": true, "defaultValue": {}, "idType": "userID", "entity": "layer",
                    "rules": [{"id": "r3", "returnValue": {}, "configDelegate": experiment,
                               "passPercentage": 100, "conditions": ["c_public"]}]}}
            });
            let rs = Ruleset::from_value(doc).unwrap();
            assert_eq!(rs.plain_text, place.is_empty(), "{place}");
            for hash in [HashAlgorithm::None, HashAlgorithm::Djb2] {
                let body = initialize_for_user_u(&rs, hash, None);
                let parsed: Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|e| panic!("{place}, {hash:?}: {e}"));
                let hashed_away = hash != HashAlgorithm::None
                    && matches!(place, "gate name" | "nested gate" | "delegate");
                if !place.is_empty() && !hashed_away {
                    assert!(holds(&parsed, odd), "{place}, {hash:?}: {parsed}");
                }
            }
        }
    }

    /// Whether `v` has `s` as a key or a string anywhere.
    fn holds(v: &Value, s: &str) -> bool {
        match v {
            Value::String(t) => t == s,
            Value::Array(items) => items.iter().any(|i| holds(i, s)),
            Value::Object(map) => map.iter().any(|(k, i)| k == s || holds(i, s)),
            _ => false,
        }
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        let mut cases: Vec<String> = (0u8..0x80)
            .flat_map(|b| {
                [
                    format!("a{}b", b as char),
                    format!("01234{}6789xyz", b as char),
                ]
            })
            .collect();
        cases.extend(
            [
                "",
                "plain_name",
                "caf\u{e9} \u{1F600} \u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
                "\"quoted\"",
                "back\\slash",
                "\u{7f}",
            ]
            .map(String::from),
        );
        for case in cases {
            let mut out = Writer::new(0);
            out.string(&case);
            assert_eq!(out.bytes, serde_json::to_vec(&case).unwrap(), "{case:?}");
        }
    }
}
