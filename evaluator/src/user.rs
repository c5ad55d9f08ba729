//! Statsig's user object, parsed once per request into the views evaluation needs.

use std::fmt;

use ahash::AHashMap;
use serde_json::{Map, Value};

use crate::condition::Name;
use crate::value::DynValue;

/// A Statsig user (`userID`, `customIDs`, `email`, `ip`, `userAgent`, `country`, `locale`,
/// `appVersion`, `custom`, `privateAttributes`, `statsigEnvironment`). Unknown keys are ignored.
#[derive(Debug, Clone, Default)]
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
        let obj = value
            .as_object()
            .ok_or_else(|| err("user", "must be a JSON object"))?;
        let mut user = User::default();
        for (key, v) in obj {
            match key.as_str() {
                "userID" => user.user_id = id_value(v, "user.userID")?,
                "email" => user.email = string_value(v, "user.email")?,
                "ip" => user.ip = string_value(v, "user.ip")?,
                "userAgent" => user.user_agent = string_value(v, "user.userAgent")?,
                "country" => user.country = string_value(v, "user.country")?,
                "locale" => user.locale = string_value(v, "user.locale")?,
                "appVersion" => user.app_version = string_value(v, "user.appVersion")?,
                "custom" => user.custom = attributes(v, "user.custom")?,
                "privateAttributes" => {
                    user.private_attributes = attributes(v, "user.privateAttributes")?
                }
                "customIDs" => user.custom_ids = ids(v, "user.customIDs")?,
                "statsigEnvironment" => {
                    user.environment = attributes(v, "user.statsigEnvironment")?
                }
                _ => {}
            }
        }
        Ok(user)
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
        if let Some(v) = top.filter(|v| v.string.as_deref().is_some_and(|s| !s.is_empty())) {
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
            .and_then(|v| v.string.as_deref())
            .unwrap_or("")
    }
}

/// `map[name]`, else `map[lowercase(name)]`.
fn get_either<'m>(map: &'m AHashMap<String, DynValue>, name: &Name) -> Option<&'m DynValue> {
    map.get(&*name.value).or_else(|| map.get(&*name.lower))
}

fn err(field: &str, problem: &'static str) -> UserError {
    UserError {
        field: field.to_owned(),
        problem,
    }
}

fn string_value(v: &Value, field: &str) -> Result<Option<DynValue>, UserError> {
    match v {
        Value::Null => Ok(None),
        Value::String(_) => Ok(Some(DynValue::new(v.clone()))),
        _ => Err(err(field, "must be a string")),
    }
}

fn id_value(v: &Value, field: &str) -> Result<Option<DynValue>, UserError> {
    match v {
        Value::Null => Ok(None),
        Value::String(_) => Ok(Some(DynValue::new(v.clone()))),
        Value::Number(n) => Ok(Some(DynValue::new(Value::String(n.to_string())))),
        _ => Err(err(field, "must be a string or a number")),
    }
}

fn object<'v>(v: &'v Value, field: &str) -> Result<Option<&'v Map<String, Value>>, UserError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(map) => Ok(Some(map)),
        _ => Err(err(field, "must be an object")),
    }
}

fn attributes(v: &Value, field: &str) -> Result<AHashMap<String, DynValue>, UserError> {
    Ok(object(v, field)?
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), DynValue::new(v.clone())))
        .collect())
}

fn ids(v: &Value, field: &str) -> Result<AHashMap<String, DynValue>, UserError> {
    let mut out = AHashMap::new();
    for (k, v) in object(v, field)?.into_iter().flatten() {
        if let Some(id) = id_value(v, field)? {
            out.insert(k.clone(), id);
        }
    }
    Ok(out)
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
        assert_eq!(u.user_id.as_ref().unwrap().string.as_deref(), Some("42"));
        assert_eq!(u.custom["level"].float, Some(3.0));
        assert_eq!(u.unit_id_str("companyID", "companyid"), "c1");
        assert_eq!(u.environment["tier"].string.as_deref(), Some("staging"));
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
}
