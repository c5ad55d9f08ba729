//! Compiled conditions and the operators that compare a value with a rule's target.
//!
//! Targets are compiled once when a ruleset loads: lowercased lookup tables for the string
//! operators, parsed numbers and dates, a compiled (size-bounded) regex. The comparisons follow
//! Statsig's core SDK, quirks included, because SDKs evaluating the same ruleset locally must
//! get the answers the server gives.

use ahash::{AHashMap, AHashSet};
use fancy_regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::ruleset::SpecKind;
use crate::user::UserField;
use crate::value::{parse_target_timestamp, version_parts, Val};

/// Longest `str_matches` pattern accepted; longer ones make the condition fail.
const MAX_REGEX_LEN: usize = 4096;
/// Compiled-size cap for a `str_matches` pattern.
const MAX_REGEX_SIZE: usize = 1 << 20;
/// Backtracking budget per match: a pathological pattern fails instead of spinning.
const REGEX_BACKTRACK_LIMIT: usize = 100_000;

/// What a condition reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Public,
    /// `pass_gate` / `fail_gate`: the nested gate's name and index (None when unknown).
    NestedGate {
        name: Box<str>,
        gate: Option<u32>,
        negate: bool,
    },
    UserField,
    EnvironmentField,
    IpBased,
    UaBased,
    CurrentTime,
    /// `user_bucket`, with `additionalValues.salt`.
    UserBucket(Box<str>),
    UnitId,
    TargetApp,
    /// `experiment_group`: the user's group in the experiment named by `field` (its index
    /// among dynamic configs; None when there is no such experiment).
    ExperimentGroup(Option<u32>),
    /// A condition type this server does not evaluate (or a malformed nested gate): the spec
    /// becomes "unsupported", as in Statsig's core SDK.
    Unsupported,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Gt,
    Gte,
    Lt,
    Lte,
    VersionGt,
    VersionGte,
    VersionLt,
    VersionLte,
    VersionEq,
    VersionNeq,
    Any,
    None,
    AnyCaseSensitive,
    NoneCaseSensitive,
    StartsWithAny,
    EndsWithAny,
    ContainsAny,
    ContainsNone,
    Matches,
    Eq,
    Neq,
    Before,
    After,
    On,
    InSegmentList,
    NotInSegmentList,
    ArrayContainsAny,
    ArrayContainsNone,
    ArrayContainsAll,
    NotArrayContainsAll,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "version_gt" => Op::VersionGt,
            "version_gte" => Op::VersionGte,
            "version_lt" => Op::VersionLt,
            "version_lte" => Op::VersionLte,
            "version_eq" => Op::VersionEq,
            "version_neq" => Op::VersionNeq,
            "any" => Op::Any,
            "none" => Op::None,
            "any_case_sensitive" => Op::AnyCaseSensitive,
            "none_case_sensitive" => Op::NoneCaseSensitive,
            "str_starts_with_any" => Op::StartsWithAny,
            "str_ends_with_any" => Op::EndsWithAny,
            "str_contains_any" => Op::ContainsAny,
            "str_contains_none" => Op::ContainsNone,
            "str_matches" => Op::Matches,
            "eq" => Op::Eq,
            "neq" => Op::Neq,
            "before" => Op::Before,
            "after" => Op::After,
            "on" => Op::On,
            "in_segment_list" => Op::InSegmentList,
            "not_in_segment_list" => Op::NotInSegmentList,
            "array_contains_any" => Op::ArrayContainsAny,
            "array_contains_none" => Op::ArrayContainsNone,
            "array_contains_all" => Op::ArrayContainsAll,
            "not_array_contains_all" => Op::NotArrayContainsAll,
            _ => return None,
        })
    }
}

/// A name with its lowercased form, both needed for Statsig's case-insensitive lookups, and
/// the user field it names, resolved at load so evaluation does not compare strings.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Name {
    pub value: Box<str>,
    pub lower: Box<str>,
    /// The top-level field this name selects (any case): `userID`, `email`, ...
    pub top: Option<UserField>,
    /// The snake_case alias Statsig checks last: `user_id`, `app_version`, `user_agent`.
    pub alias: Option<UserField>,
    /// Whether `lower` differs from `value` (a lookup by `lower` can find something else).
    pub has_upper: bool,
}

impl Name {
    pub fn new(s: &str) -> Name {
        let lower: Box<str> = s.to_lowercase().into();
        let top = match &*lower {
            "userid" => Some(UserField::UserId),
            "email" => Some(UserField::Email),
            "ip" => Some(UserField::Ip),
            "country" => Some(UserField::Country),
            "locale" => Some(UserField::Locale),
            "appversion" => Some(UserField::AppVersion),
            "useragent" => Some(UserField::UserAgent),
            _ => None,
        };
        let alias = match &*lower {
            "user_id" => Some(UserField::UserId),
            "app_version" => Some(UserField::AppVersion),
            "user_agent" => Some(UserField::UserAgent),
            _ => None,
        };
        Name {
            has_upper: *lower != *s,
            value: s.into(),
            lower,
            top,
            alias,
        }
    }
}

/// A compiled condition.
#[derive(Debug)]
pub(crate) struct Condition {
    pub kind: Kind,
    /// None when missing or unknown: the condition is then unsupported (except for the types
    /// that take no operator).
    pub op: Option<Op>,
    pub field: Option<Name>,
    pub id_type: Name,
    pub target: Target,
}

impl Condition {
    /// Whether the result depends only on the user, the clock and the ruleset (no nested
    /// evaluation, nothing that marks the spec unsupported), so it can be reused for the
    /// same user.
    pub fn is_leaf(&self) -> bool {
        self.op.is_some()
            && !matches!(
                self.kind,
                Kind::Public
                    | Kind::NestedGate { .. }
                    | Kind::ExperimentGroup(_)
                    | Kind::Unsupported
            )
    }

    /// Compiles one condition object. `index` resolves the gates and experiments it names.
    pub fn compile(raw: &Value, index: &dyn Fn(SpecKind, &str) -> Option<u32>) -> Condition {
        let get_str = |key: &str| raw.get(key).and_then(Value::as_str);
        let target_json = raw.get("targetValue").unwrap_or(&Value::Null);
        let op = get_str("operator").and_then(Op::parse);
        let kind = match get_str("type").unwrap_or("") {
            "public" => Kind::Public,
            t @ ("pass_gate" | "fail_gate") => match target_json.as_str() {
                Some(name) => Kind::NestedGate {
                    name: name.into(),
                    gate: index(SpecKind::Gate, name),
                    negate: t == "fail_gate",
                },
                None => Kind::Unsupported,
            },
            "user_field" => Kind::UserField,
            "environment_field" => Kind::EnvironmentField,
            "ip_based" => Kind::IpBased,
            "ua_based" => Kind::UaBased,
            "current_time" => Kind::CurrentTime,
            "user_bucket" => Kind::UserBucket(
                raw.pointer("/additionalValues/salt")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
            ),
            "unit_id" => Kind::UnitId,
            "target_app" => Kind::TargetApp,
            "experiment_group" => Kind::ExperimentGroup(
                get_str("field").and_then(|name| index(SpecKind::Config, name)),
            ),
            _ => Kind::Unsupported,
        };
        Condition {
            kind,
            op,
            field: get_str("field").map(Name::new),
            id_type: Name::new(get_str("idType").unwrap_or("userID")),
            target: Target::compile(target_json, op == Some(Op::Matches)),
        }
    }
}

/// A rule's `targetValue` with every view the operators use.
#[derive(Debug, Default)]
pub(crate) struct Target {
    pub is_null: bool,
    pub boolean: Option<bool>,
    pub float: Option<f64>,
    pub string: Option<Box<str>>,
    pub timestamp: Option<i64>,
    /// String targets as version parts (None when a part is not an integer).
    pub version: Option<Box<[i128]>>,
    /// Array targets keyed by lowercase string, keeping the last (index, original) per key.
    pub keyed: Option<KeyedArray>,
    /// The same entries as (lowercase, original) pairs, for the operators that scan them.
    pub scan: Vec<(Box<str>, Box<str>)>,
    /// Array targets' elements as Statsig strings (null elements have none), for `array_*`.
    pub elements: Option<Vec<Option<Box<str>>>>,
    /// Object targets (v2 `user_bucket` sets): key -> value as a string.
    pub object: Option<AHashMap<Box<str>, Box<str>>>,
    pub regex: Option<Regex>,
    pub kind: TargetKind,
}

/// An array target: lowercase text -> (index, original text), the last duplicate winning.
pub(crate) type KeyedArray = AHashMap<Box<str>, (usize, Box<str>)>;

/// The JSON type of a target, which decides how `eq` compares.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetKind {
    #[default]
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// A JSON element as Statsig's targets stringify it: strings as-is, anything else as JSON.
fn json_text(v: &Value) -> Box<str> {
    match v {
        Value::String(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

impl Target {
    fn compile(json: &Value, want_regex: bool) -> Target {
        let mut t = Target::default();
        match json {
            Value::Null => t.is_null = true,
            Value::Bool(b) => {
                t.kind = TargetKind::Bool;
                t.boolean = Some(*b);
            }
            Value::Number(n) => {
                t.kind = TargetKind::Number;
                t.float = n.as_f64();
            }
            Value::String(s) => {
                t.kind = TargetKind::String;
                t.timestamp = parse_target_timestamp(s);
                t.version = version_parts(s);
                t.float = s.parse().ok();
                t.string = Some(s.as_str().into());
                if want_regex && s.len() <= MAX_REGEX_LEN {
                    t.regex = RegexBuilder::new(s)
                        .backtrack_limit(REGEX_BACKTRACK_LIMIT)
                        .delegate_size_limit(MAX_REGEX_SIZE)
                        .build()
                        .ok();
                }
            }
            Value::Array(items) => {
                t.kind = TargetKind::Array;
                let mut keyed: KeyedArray = AHashMap::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let text = json_text(item);
                    keyed.insert(text.to_lowercase().into(), (i, text));
                }
                t.scan = keyed
                    .iter()
                    .map(|(lower, (_, original))| (lower.clone(), original.clone()))
                    .collect();
                t.keyed = Some(keyed);
                t.elements = Some(
                    items
                        .iter()
                        .map(|v| {
                            crate::value::DynValue::new(v.clone())
                                .string()
                                .map(Into::into)
                        })
                        .collect(),
                );
            }
            Value::Object(map) => {
                t.kind = TargetKind::Object;
                t.object = Some(
                    map.iter()
                        .map(|(k, v)| (k.as_str().into(), json_text(v)))
                        .collect(),
                );
            }
        }
        t
    }
}

/// Applies `op` to `value` and `target`; `in_list` answers ID-list membership.
pub(crate) fn compare(
    op: Op,
    value: Val<'_>,
    target: &Target,
    in_list: &dyn Fn(&str, &str) -> bool,
) -> bool {
    match op {
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => match (value.float(), target.float) {
            (Some(l), Some(r)) => match op {
                Op::Gt => l > r,
                Op::Gte => l >= r,
                Op::Lt => l < r,
                _ => l <= r,
            },
            _ => false,
        },
        Op::VersionGt
        | Op::VersionGte
        | Op::VersionLt
        | Op::VersionLte
        | Op::VersionEq
        | Op::VersionNeq => value.with_version(|left| {
            let (Some(left), Some(right)) = (left, target.version.as_deref()) else {
                return false;
            };
            let ord = compare_versions(left, right);
            match op {
                Op::VersionGt => ord.is_gt(),
                Op::VersionGte => ord.is_ge(),
                Op::VersionLt => ord.is_lt(),
                Op::VersionLte => ord.is_le(),
                Op::VersionEq => ord.is_eq(),
                _ => ord.is_ne(),
            }
        }),
        Op::Any | Op::StartsWithAny | Op::EndsWithAny | Op::ContainsAny => {
            strings_in_array(value, target, op, true)
        }
        Op::None => !strings_in_array(value, target, Op::Any, true),
        Op::ContainsNone => !strings_in_array(value, target, Op::ContainsAny, true),
        Op::AnyCaseSensitive => strings_in_array(value, target, Op::Any, false),
        Op::NoneCaseSensitive => !strings_in_array(value, target, Op::Any, false),
        Op::Matches => value.with_str(false, |s| match (s, &target.regex) {
            (Some(s), Some(re)) => re.is_match(s).unwrap_or(false),
            _ => false,
        }),
        Op::Eq => equals(value, target),
        Op::Neq => !equals(value, target),
        Op::Before | Op::After | Op::On => {
            let right = target.timestamp.or(target.float.map(|f| f as i64));
            match (value.time(), right) {
                // A user time under 10^12 is taken as seconds (rules are always in ms).
                (Some(l), Some(r)) => {
                    let l = if l < 1_000_000_000_000 {
                        l.saturating_mul(1000)
                    } else {
                        l
                    };
                    match op {
                        Op::Before => l < r,
                        Op::After => l > r,
                        _ => l / 86_400_000 == r / 86_400_000,
                    }
                }
                _ => false,
            }
        }
        Op::InSegmentList | Op::NotInSegmentList => {
            let found = match target.string.as_deref() {
                Some(list) => value.with_str(false, |s| s.is_some_and(|s| in_list(list, s))),
                None => return false,
            };
            found == (op == Op::InSegmentList)
        }
        Op::ArrayContainsAny
        | Op::ArrayContainsNone
        | Op::ArrayContainsAll
        | Op::NotArrayContainsAll => arrays(value, target, op),
    }
}

/// Statsig's version order: parts compared as integers, a missing part counting as 0.
fn compare_versions(left: &[i128], right: &[i128]) -> std::cmp::Ordering {
    (0..left.len().max(right.len()))
        .map(|i| left.get(i).unwrap_or(&0).cmp(right.get(i).unwrap_or(&0)))
        .find(|ord| ord.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

fn strings_in_array(value: Val<'_>, target: &Target, op: Op, ignore_case: bool) -> bool {
    value.with_str(ignore_case, |s| {
        let s = s.unwrap_or("");
        if ignore_case && op == Op::Any {
            if let Some(object) = &target.object {
                return object.contains_key(s);
            }
            return target.keyed.as_ref().is_some_and(|k| k.contains_key(s));
        }
        target.scan.iter().any(|(lower, original)| {
            let right: &str = if ignore_case { lower } else { original };
            match op {
                Op::Any => s == right,
                Op::StartsWithAny => s.starts_with(right),
                Op::EndsWithAny => s.ends_with(right),
                Op::ContainsAny => s.contains(right),
                _ => false,
            }
        })
    })
}

fn equals(value: Val<'_>, target: &Target) -> bool {
    match target.kind {
        TargetKind::Null => value.is_null(),
        TargetKind::Bool => target.boolean == value.boolean(),
        TargetKind::Number => target.float == value.float(),
        TargetKind::String => value.with_str(false, |s| s == target.string.as_deref()),
        TargetKind::Array => {
            let (Some(keyed), Some(items)) = (&target.keyed, value.array()) else {
                return false;
            };
            keyed.len() == items.len()
                && keyed.values().all(|(i, original)| {
                    items
                        .get(*i)
                        .and_then(|item| item.string())
                        .is_some_and(|s| s == &**original)
                })
        }
        TargetKind::Object => {
            let (Some(object), Some(Value::Object(map))) = (&target.object, value.json()) else {
                return false;
            };
            object.len() == map.len()
                && object.iter().all(|(k, v)| {
                    map.get(&**k).is_some_and(|item| {
                        crate::value::DynValue::new(item.clone()).string() == Some(&**v)
                    })
                })
        }
    }
}

fn arrays(value: Val<'_>, target: &Target, op: Op) -> bool {
    let (Some(elements), Some(items)) = (&target.elements, value.array()) else {
        return false;
    };
    let have: AHashSet<Option<&str>> = items.iter().map(|i| i.string()).collect();
    for element in elements {
        let present = have.contains(&element.as_deref());
        match op {
            Op::ArrayContainsAll if !present => return false,
            Op::ArrayContainsAny if present => return true,
            Op::ArrayContainsNone if present => return false,
            Op::NotArrayContainsAll if !present => return true,
            _ => {}
        }
    }
    !matches!(op, Op::ArrayContainsAny | Op::NotArrayContainsAll)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::DynValue;
    use serde_json::json;

    fn check(op: &str, user: Value, target: Value) -> bool {
        let cond = Condition::compile(
            &json!({"type": "user_field", "operator": op, "targetValue": target, "field": "f"}),
            &|_, _| None,
        );
        let dv = DynValue::new(user);
        let val = if dv.json.is_null() {
            Val::Missing
        } else {
            Val::Dyn(&dv)
        };
        compare(cond.op.unwrap(), val, &cond.target, &|list, id| {
            list == "list" && id == "member"
        })
    }

    #[test]
    fn numeric_operators_coerce_strings() {
        assert!(check("gt", json!("10"), json!(5)));
        assert!(check("gte", json!(5), json!("5")));
        assert!(check("lt", json!(3), json!(3.5)));
        assert!(!check("lte", json!("abc"), json!(7)));
        assert!(!check("gt", Value::Null, json!(0)));
    }

    #[test]
    fn version_operators() {
        assert!(check("version_gt", json!("1.10.0"), json!("1.9")));
        assert!(check("version_eq", json!("2.0"), json!("2.0.0")));
        assert!(check("version_lt", json!("1.10.3-beta"), json!("1.10.4")));
        assert!(check("version_neq", json!("3"), json!("3.0.1")));
        assert!(!check("version_gt", json!("1.0"), json!(0)));
        assert!(!check("version_lte", json!("abc"), json!("3")));
    }

    #[test]
    fn string_set_operators() {
        assert!(check("any", json!("us"), json!(["US", "CA"])));
        assert!(check("none", json!("fr"), json!(["US", "CA"])));
        assert!(check("none", Value::Null, json!(["US"])));
        assert!(!check("any_case_sensitive", json!("us"), json!(["US"])));
        assert!(check("none_case_sensitive", json!("us"), json!(["US"])));
        assert!(check("any", json!(5), json!(["5"])));
        assert!(check(
            "str_starts_with_any",
            json!("Admin@x"),
            json!(["admin"])
        ));
        assert!(check(
            "str_ends_with_any",
            json!("a@Statsig.com"),
            json!(["@STATSIG.COM"])
        ));
        assert!(check("str_contains_any", json!("a+b"), json!(["+"])));
        assert!(check("str_contains_none", json!("ab"), json!(["x"])));
        assert!(check("str_contains_any", Value::Null, json!([""])));
    }

    #[test]
    fn regex_is_a_search_and_bad_patterns_fail_closed() {
        assert!(check("str_matches", json!("xx123yy"), json!("\\d{3}")));
        assert!(!check("str_matches", json!("abc"), json!("(unclosed")));
        assert!(check("str_matches", json!("foobar"), json!("(?<=foo)bar")));
        let long = "a".repeat(MAX_REGEX_LEN + 1);
        assert!(!check("str_matches", json!(long.clone()), json!(long)));
    }

    #[test]
    fn equality_is_typed() {
        assert!(check("eq", json!("5"), json!(5)));
        assert!(check("eq", Value::Null, Value::Null));
        assert!(!check("eq", json!("x"), Value::Null));
        assert!(check("eq", json!(true), json!(true)));
        assert!(!check("eq", json!("true"), json!(true)));
        assert!(check("neq", json!("a"), json!("b")));
        assert!(check("eq", json!(["a", 1]), json!(["a", 1])));
    }

    #[test]
    fn time_operators() {
        assert!(check(
            "before",
            json!(1_700_000_000_000_i64),
            json!(1_800_000_000_000_i64)
        ));
        assert!(check("after", json!("2024-01-01T00:00:00Z"), json!(0)));
        assert!(check(
            "on",
            json!(1_704_100_000_000_i64),
            json!(1_704_067_200_000_i64)
        ));
        assert!(
            check("on", json!(1_704_067_200), json!(1_704_067_200_000_i64)),
            "seconds"
        );
        assert!(!check("on", json!("garbage"), json!(0)));
    }

    #[test]
    fn segment_lists() {
        assert!(check("in_segment_list", json!("member"), json!("list")));
        assert!(!check("in_segment_list", json!("other"), json!("list")));
        assert!(check("not_in_segment_list", json!("other"), json!("list")));
    }

    #[test]
    fn array_operators() {
        assert!(check("array_contains_any", json!(["a", "b"]), json!(["b"])));
        assert!(check("array_contains_none", json!(["a"]), json!(["b"])));
        assert!(check(
            "array_contains_all",
            json!(["a", "c", "d"]),
            json!(["a", "c"])
        ));
        assert!(check(
            "not_array_contains_all",
            json!(["a"]),
            json!(["a", "c"])
        ));
        assert!(check("array_contains_any", json!([2.0]), json!([1, 2])));
        assert!(!check("array_contains_none", json!("a"), json!(["b"])));
    }

    #[test]
    fn unknown_operator_does_not_compile() {
        let c = Condition::compile(
            &json!({"type": "user_field", "operator": "glob"}),
            &|_, _| None,
        );
        assert_eq!(c.op, None);
        let c = Condition::compile(&json!({"type": "multi_pass_gate"}), &|_, _| None);
        assert_eq!(c.kind, Kind::Unsupported);
    }
}
