//! Statsig's user object, parsed once per request into the views evaluation needs.

use std::fmt;

use ahash::AHashMap;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::condition::Name;
use crate::value::DynValue;

/// A Statsig user (`userID`, `customIDs`, `email`, `ip`, `userAgent`, `country`, `locale`,
/// `appVersion`, `custom`, `privateAttributes`, `statsigEnvironment`). Unknown keys are ignored.
#[derive(Debug, Clone)]
pub struct User {
    /// `userID`.
    pub user_id: Option<DynValue>,
    /// `email`.
    pub email: Option<DynValue>,
    /// `ip`.
    pub ip: Option<DynValue>,
    /// `userAgent`.
    pub user_agent: Option<DynValue>,
    /// `country`.
    pub country: Option<DynValue>,
    /// `locale`.
    pub locale: Option<DynValue>,
    /// `appVersion`.
    pub app_version: Option<DynValue>,
    /// `custom` attributes.
    pub custom: AHashMap<String, DynValue>,
    /// `privateAttributes`: used to evaluate, never logged.
    pub private_attributes: AHashMap<String, DynValue>,
    /// `customIDs` (unit ids other than userID, e.g. `stableID`, `companyID`).
    pub custom_ids: AHashMap<String, DynValue>,
    /// `statsigEnvironment` (normally `{"tier": ...}`).
    pub environment: AHashMap<String, DynValue>,
}

impl Default for User {
    fn default() -> Self {
        User {
            user_id: None,
            email: None,
            ip: None,
            user_agent: None,
            country: None,
            locale: None,
            app_version: None,
            custom: attribute_map(),
            private_attributes: attribute_map(),
            custom_ids: attribute_map(),
            environment: attribute_map(),
        }
    }
}

/// An empty attribute map, seeded from this thread's random state. `RandomState::new()`
/// bumps one process-wide atomic counter per map, which a front door parsing a user per
/// request on every worker contends on; per-thread random seeds keep the hashes just as
/// unpredictable to a client choosing attribute names.
fn attribute_map() -> AHashMap<String, DynValue> {
    thread_local!(static SEEDS: ahash::RandomState = ahash::RandomState::new());
    AHashMap::with_hasher(SEEDS.with(Clone::clone))
}

/// The user's typed top-level string fields, which condition field names resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserField {
    UserId,
    Email,
    Ip,
    Country,
    Locale,
    AppVersion,
    UserAgent,
}

/// Why a user object was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError {
    /// The offending field, e.g. `user.customIDs`.
    pub field: String,
    /// What was wrong with it.
    pub problem: &'static str,
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

impl std::error::Error for UserError {}

impl User {
    /// Parses a user from its JSON object. Ids may be strings or numbers (numbers become
    /// their decimal text, as the SDKs do); other typed fields must be strings or null.
    pub fn from_json(value: &Value) -> Result<User, UserError> {
        let mut user = User::default();
        match value.deserialize_any(UserVisitor(&mut user)) {
            Ok(None) => Ok(user),
            Ok(Some(problem)) => Err(problem),
            Err(_) => Err(not_an_object()),
        }
    }

    /// [`User::from_json`] straight from JSON text, without building a tree of the whole
    /// user first: the front door's path, where the user is a slice of the request body.
    pub fn from_json_str(text: &str) -> Result<User, UserError> {
        let mut user = User::default();
        let mut de = serde_json::Deserializer::from_str(text);
        match de
            .deserialize_any(UserVisitor(&mut user))
            .and_then(|problem| de.end().map(|()| problem))
        {
            Ok(None) => Ok(user),
            Ok(Some(problem)) => Err(problem),
            Err(e) if e.is_data() => Err(not_an_object()),
            Err(_) => Err(err("user", "is not valid JSON")),
        }
    }

    /// The unit id for an `idType`: `userID` (any case), else `customIDs[idType]`, then
    /// `customIDs[lowercase(idType)]`.
    pub fn unit_id(&self, id_type: &str, id_type_lower: &str) -> Option<&DynValue> {
        if id_type_lower == "userid" {
            return self.user_id.as_ref();
        }
        self.custom_ids
            .get(id_type)
            .or_else(|| self.custom_ids.get(id_type_lower))
    }

    /// Statsig's user-field lookup (`user_field` conditions, and the first step of `ip_based`
    /// and `ua_based`): known top-level fields when a non-empty string, then `custom` (exact,
    /// then lowercased name), then `privateAttributes`, then the snake_case aliases.
    pub(crate) fn field(&self, field: Option<&Name>) -> Option<&DynValue> {
        let field = field?;
        let top = field.top.and_then(|f| self.top_level(f));
        if let Some(v) = top.filter(|v| v.string().is_some_and(|s| !s.is_empty())) {
            return Some(v);
        }
        get_either(&self.custom, field)
            .or_else(|| get_either(&self.private_attributes, field))
            .or_else(|| field.alias.and_then(|f| self.top_level(f)))
    }

    fn top_level(&self, field: UserField) -> Option<&DynValue> {
        match field {
            UserField::UserId => self.user_id.as_ref(),
            UserField::Email => self.email.as_ref(),
            UserField::Ip => self.ip.as_ref(),
            UserField::Country => self.country.as_ref(),
            UserField::Locale => self.locale.as_ref(),
            UserField::AppVersion => self.app_version.as_ref(),
            UserField::UserAgent => self.user_agent.as_ref(),
        }
    }

    /// The unit id as a string for hashing; a missing unit hashes as `""`.
    pub fn unit_id_str(&self, id_type: &str, id_type_lower: &str) -> &str {
        self.unit_id(id_type, id_type_lower)
            .and_then(|v| v.string())
            .unwrap_or("")
    }
}

/// `map[name]`, else `map[lowercase(name)]`.
/// (The second lookup is skipped when the name is already lowercase: most field names are.)
fn get_either<'m>(map: &'m AHashMap<String, DynValue>, name: &Name) -> Option<&'m DynValue> {
    map.get(&*name.value)
        .or_else(|| name.has_upper.then(|| map.get(&*name.lower)).flatten())
}

fn err(field: &str, problem: &'static str) -> UserError {
    UserError {
        field: field.to_owned(),
        problem,
    }
}

fn not_an_object() -> UserError {
    err("user", "must be a JSON object")
}

/// The user object's keys Statsig defines; others are ignored.
#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Field {
    #[serde(rename = "userID")]
    UserId,
    Email,
    Ip,
    UserAgent,
    Country,
    Locale,
    AppVersion,
    Custom,
    PrivateAttributes,
    #[serde(rename = "customIDs")]
    CustomIds,
    StatsigEnvironment,
    #[serde(other)]
    Other,
}

/// Reads a user object key by key into the user it holds, taking each known value by value
/// (no copy of the whole object). A wrong-typed field is reported after the rest is
/// consumed, so the JSON reader stays in step; the first one in the object is the one named.
struct UserVisitor<'u>(&'u mut User);

impl<'de> Visitor<'de> for UserVisitor<'_> {
    type Value = Option<UserError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a user object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let user = self.0;
        let mut problem = None;
        while let Some(field) = map.next_key::<Field>()? {
            if field == Field::Other || problem.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let v: Value = map.next_value()?;
            let parsed = match field {
                Field::UserId => id_value(v, "user.userID").map(|v| user.user_id = v),
                Field::Email => string_value(v, "user.email").map(|v| user.email = v),
                Field::Ip => string_value(v, "user.ip").map(|v| user.ip = v),
                Field::UserAgent => string_value(v, "user.userAgent").map(|v| user.user_agent = v),
                Field::Country => string_value(v, "user.country").map(|v| user.country = v),
                Field::Locale => string_value(v, "user.locale").map(|v| user.locale = v),
                Field::AppVersion => {
                    string_value(v, "user.appVersion").map(|v| user.app_version = v)
                }
                Field::Custom => attributes(v, "user.custom", &mut user.custom),
                Field::PrivateAttributes => {
                    attributes(v, "user.privateAttributes", &mut user.private_attributes)
                }
                Field::CustomIds => ids(v, "user.customIDs", &mut user.custom_ids),
                Field::StatsigEnvironment => {
                    attributes(v, "user.statsigEnvironment", &mut user.environment)
                }
                Field::Other => Ok(()),
            };
            problem = parsed.err();
        }
        Ok(problem)
    }
}

fn string_value(v: Value, field: &str) -> Result<Option<DynValue>, UserError> {
    match v {
        Value::Null => Ok(None),
        Value::String(_) => Ok(Some(DynValue::new(v))),
        _ => Err(err(field, "must be a string")),
    }
}

fn id_value(v: Value, field: &str) -> Result<Option<DynValue>, UserError> {
    match v {
        Value::Null => Ok(None),
        Value::String(_) => Ok(Some(DynValue::new(v))),
        Value::Number(n) => Ok(Some(DynValue::new(Value::String(n.to_string())))),
        _ => Err(err(field, "must be a string or a number")),
    }
}

fn object(v: Value, field: &str) -> Result<Map<String, Value>, UserError> {
    match v {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        _ => Err(err(field, "must be an object")),
    }
}

/// Replaces `out` with the object's entries (a repeated key: the last one wins).
fn attributes(
    v: Value,
    field: &str,
    out: &mut AHashMap<String, DynValue>,
) -> Result<(), UserError> {
    let entries = object(v, field)?;
    out.clear();
    out.extend(entries.into_iter().map(|(k, v)| (k, DynValue::new(v))));
    Ok(())
}

/// Like [`attributes`], for ids: strings or numbers, nulls skipped.
fn ids(v: Value, field: &str, out: &mut AHashMap<String, DynValue>) -> Result<(), UserError> {
    out.clear();
    for (k, v) in object(v, field)? {
        if let Some(id) = id_value(v, field)? {
            out.insert(k, id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_field() {
        let u = User::from_json(&json!({
            "userID": 42, "email": "a@b.c", "customIDs": {"companyID": "c1"},
            "custom": {"level": 3}, "privateAttributes": {"vip": true},
            "statsigEnvironment": {"tier": "staging"}, "unknown": [1]
        }))
        .unwrap();
        assert_eq!(u.user_id.as_ref().unwrap().string(), Some("42"));
        assert_eq!(u.custom["level"].float(), Some(3.0));
        assert_eq!(u.unit_id_str("companyID", "companyid"), "c1");
        assert_eq!(u.environment["tier"].string(), Some("staging"));
    }

    #[test]
    fn unit_id_falls_back_to_the_lowercased_id_type() {
        let u = User::from_json(&json!({"customIDs": {"companyid": "c9"}})).unwrap();
        assert_eq!(u.unit_id_str("companyID", "companyid"), "c9");
        assert_eq!(u.unit_id_str("stableID", "stableid"), "");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = User::from_json(&json!({"email": 5})).unwrap_err();
        assert_eq!(e.to_string(), "user.email: must be a string");
        assert!(User::from_json(&json!("nope")).is_err());
        assert!(User::from_json(&json!({"customIDs": []})).is_err());
    }

    /// A user's debug text with its hash maps in key order, for comparing two parses.
    fn sorted(user: &Result<User, UserError>) -> String {
        let Ok(u) = user else {
            return format!("{user:?}");
        };
        let map = |m: &AHashMap<String, DynValue>| {
            format!(
                "{:?}",
                m.iter().collect::<std::collections::BTreeMap<_, _>>()
            )
        };
        let scalars = [
            &u.user_id,
            &u.email,
            &u.ip,
            &u.user_agent,
            &u.country,
            &u.locale,
        ];
        format!(
            "{scalars:?} {:?} {} {} {} {}",
            u.app_version,
            map(&u.custom),
            map(&u.private_attributes),
            map(&u.custom_ids),
            map(&u.environment)
        )
    }

    #[test]
    fn text_and_tree_parse_alike() {
        let cases = [
            json!({"userID": 42, "email": "a@b.c", "customIDs": {"companyID": 7, "x": null},
                   "custom": {"level": 3, "tags": ["a", "B"]}, "privateAttributes": {"vip": true},
                   "statsigEnvironment": {"tier": "staging"}, "unknown": [1, {"a": 2}],
                   "country": null}),
            json!({"email": 5}),
            json!({"unknown": {"deep": [1]}, "custom": "no", "email": 5}),
            json!({"customIDs": []}),
            json!([1]),
            json!("nope"),
        ];
        for case in cases {
            let text = case.to_string();
            let (tree, parsed) = (User::from_json(&case), User::from_json_str(&text));
            assert_eq!(sorted(&tree), sorted(&parsed), "{text}");
        }
        let e = User::from_json_str("{\"custom\": 1, \"email\": 5}").unwrap_err();
        assert_eq!(e.to_string(), "user.custom: must be an object");
        let e = User::from_json_str("{\"userID\": ").unwrap_err();
        assert_eq!(e.to_string(), "user: is not valid JSON");
    }
}
