//! User-side values and the views an operator may ask for.
//!
//! Statsig compares a user's value as a string, a number, a timestamp or an array depending on
//! the operator, with fixed coercions (a number's string is Rust's `f64` display, `"5"` is also
//! the number 5, an array's string is its JSON). A string's views that need parsing (number,
//! timestamp, version, lowercase) are computed the first time an operator asks, once per
//! value: most requests compare a few fields with one operator each, and parsing every view
//! of every field up front cost more than the evaluation. Evaluation itself stays free of
//! allocation for the views a string needs no copy for.

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDateTime};
use serde_json::Value;

/// One user attribute and its views.
#[derive(Debug, Clone, Default)]
pub struct DynValue {
    /// The value as the user sent it.
    pub json: Value,
    /// String view of a non-string (a number via `f64` display, a bool, an array as JSON);
    /// a string is its own. Read it through [`DynValue::string`].
    text: Option<Box<str>>,
    /// Boolean view (JSON booleans only).
    pub boolean: Option<bool>,
    /// Array elements, for the `array_contains_*` operators.
    pub array: Option<Vec<DynValue>>,
    /// The lowercased string view, when it differs from the string view.
    lower: OnceLock<Option<Box<str>>>,
    /// Numeric, integer and timestamp views.
    numbers: OnceLock<Numbers>,
    /// The string view as version parts; None when a part is not an integer.
    version: OnceLock<Option<Box<[i128]>>>,
}

/// A value's numeric views, computed together (they parse the same text).
#[derive(Debug, Clone, Copy, Default)]
struct Numbers {
    /// Numbers, and strings that parse as `f64`.
    float: Option<f64>,
    /// Integral numbers, and strings that parse as `i64`.
    int: Option<i64>,
    /// Milliseconds since the epoch, for strings holding an integer or an ISO date.
    timestamp: Option<i64>,
}

/// Views derive from `json`, computed or not.
impl PartialEq for DynValue {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl DynValue {
    /// Wraps `json` with the views Statsig's core SDK gives it (a string's parsed views wait
    /// for their first use).
    pub fn new(json: Value) -> Self {
        let mut out = DynValue::default();
        match &json {
            Value::Null | Value::Object(_) | Value::String(_) => {}
            Value::Bool(b) => {
                out.boolean = Some(*b);
                out.text = Some(b.to_string().into());
            }
            Value::Number(n) => {
                let mut float = n.as_f64();
                let mut int = n.as_i64();
                if let (Some(f), None) = (float, int) {
                    if (f as i64) as f64 == f {
                        int = Some(f as i64);
                    }
                } else if let (None, Some(i)) = (float, int) {
                    float = Some(i as f64);
                }
                out.text = float
                    .map(|f| f.to_string())
                    .or_else(|| int.map(|i| i.to_string()))
                    .map(Into::into);
                out.numbers = OnceLock::from(Numbers {
                    float,
                    int,
                    timestamp: None,
                });
            }
            Value::Array(items) => {
                out.array = Some(items.iter().cloned().map(DynValue::new).collect());
                out.text = Some(json.to_string().into());
            }
        }
        out.json = json;
        out
    }

    /// A string attribute (user ids, email, ...).
    pub fn from_text(s: &str) -> Self {
        DynValue::new(Value::String(s.to_owned()))
    }

    /// Computes every view now: for values shared by every request (a ruleset's), so that no
    /// request waits on another computing one.
    pub(crate) fn with_all_views(self) -> Self {
        self.lower();
        self.numbers();
        self.version();
        self
    }

    /// String view: strings as-is, numbers via `f64` display, bools, arrays as JSON.
    pub fn string(&self) -> Option<&str> {
        match &self.json {
            Value::String(s) => Some(s),
            _ => self.text.as_deref(),
        }
    }

    /// The lowercased string view (the string view itself when lowercasing changes nothing:
    /// ids, emails, numbers, so no copy is made for most values).
    pub fn lower(&self) -> Option<&str> {
        self.lower
            .get_or_init(|| self.string().and_then(lowercased_if_different))
            .as_deref()
            .or(self.string())
    }

    /// Numeric view: numbers, and strings that parse as `f64`.
    pub fn float(&self) -> Option<f64> {
        self.numbers().float
    }

    /// Integer view: integral numbers, and strings that parse as `i64`.
    pub fn int(&self) -> Option<i64> {
        self.numbers().int
    }

    /// Milliseconds since the epoch, for strings holding an integer or an ISO date.
    pub fn timestamp(&self) -> Option<i64> {
        self.numbers().timestamp
    }

    /// The string view as version parts, for the `version_*` operators; None when a part is
    /// not an integer.
    pub fn version(&self) -> Option<&[i128]> {
        self.version
            .get_or_init(|| self.string().and_then(version_parts))
            .as_deref()
    }

    fn numbers(&self) -> Numbers {
        *self.numbers.get_or_init(|| match &self.json {
            Value::String(s) => Numbers {
                float: s.parse().ok(),
                int: s.parse().ok(),
                timestamp: parse_user_timestamp(s),
            },
            // Numbers have theirs from `new`; nothing else has any.
            _ => Numbers::default(),
        })
    }
}

/// The value a condition compares: a user attribute, a computed bucket, or the clock.
///
/// Buckets and the clock carry only the views Statsig gives them (a bucket is a number with a
/// string form; the clock is an integer only), without allocating.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    /// No value: compares as the empty string and as JSON null.
    Missing,
    /// A user attribute.
    Dyn(&'a DynValue),
    /// `user_bucket`: `hash % 1000`.
    Bucket(u64),
    /// `current_time`: now, in ms.
    Clock(i64),
}

impl<'a> Val<'a> {
    /// Calls `f` with the string view (the bucket's decimal digits are formatted on the stack).
    pub fn with_str<R>(&self, lower: bool, f: impl FnOnce(Option<&str>) -> R) -> R {
        match self {
            Val::Missing | Val::Clock(_) => f(None),
            Val::Dyn(d) => f(if lower { d.lower() } else { d.string() }),
            Val::Bucket(n) => {
                let digits = Digits::new(*n);
                f(Some(digits.as_str()))
            }
        }
    }

    /// Numeric view.
    pub fn float(&self) -> Option<f64> {
        match self {
            Val::Dyn(d) => d.float(),
            Val::Bucket(n) => Some(*n as f64),
            Val::Missing | Val::Clock(_) => None,
        }
    }

    /// Time view: a parsed timestamp, else the integer view.
    pub fn time(&self) -> Option<i64> {
        match self {
            Val::Dyn(d) => d.timestamp().or(d.int()),
            Val::Bucket(n) => Some(*n as i64),
            Val::Clock(now) => Some(*now),
            Val::Missing => None,
        }
    }

    /// Calls `f` with the version parts (None: no string view, or not a version).
    pub fn with_version<R>(&self, f: impl FnOnce(Option<&[i128]>) -> R) -> R {
        match self {
            Val::Dyn(d) => f(d.version()),
            Val::Bucket(n) => f(Some(&[*n as i128])),
            Val::Missing | Val::Clock(_) => f(None),
        }
    }

    /// Boolean view.
    pub fn boolean(&self) -> Option<bool> {
        match self {
            Val::Dyn(d) => d.boolean,
            _ => None,
        }
    }

    /// The underlying JSON, when the value came from the user.
    pub fn json(&self) -> Option<&'a Value> {
        match self {
            Val::Dyn(d) => Some(&d.json),
            _ => None,
        }
    }

    /// True when the value is absent or JSON null (what `eq null` tests).
    pub fn is_null(&self) -> bool {
        match self {
            Val::Missing => true,
            Val::Dyn(d) => d.json.is_null(),
            Val::Bucket(_) | Val::Clock(_) => false,
        }
    }

    /// Array view.
    pub fn array(&self) -> Option<&'a [DynValue]> {
        match self {
            Val::Dyn(d) => d.array.as_deref(),
            _ => None,
        }
    }
}

/// Decimal digits of a u64, on the stack.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn new(mut n: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Digits { buf, start }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("")
    }
}

/// Statsig's version parts: cut at the first `-`, split on `.`, every part an integer
/// (surrounding spaces allowed); None when any part is not.
pub(crate) fn version_parts(v: &str) -> Option<Box<[i128]>> {
    v.split('-')
        .next()
        .unwrap_or("")
        .split('.')
        .map(|p| p.trim().parse::<i128>().ok())
        .collect()
}

/// `s` lowercased, or None when that is `s` itself (checked without a copy for ASCII).
fn lowercased_if_different(s: &str) -> Option<Box<str>> {
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let lower = s.to_lowercase();
    (lower != s).then(|| lower.into())
}

/// A user's string as a timestamp: an integer, an RFC 3339 date or `%Y-%m-%d %H:%M:%S` (UTC).
fn parse_user_timestamp(s: &str) -> Option<i64> {
    if let Ok(ts) = s.parse::<i64>() {
        return Some(ts);
    }
    if s.len() < 8 || s.len() > 20 || !(s.contains('-') || s.contains('T') || s.contains(':')) {
        return None;
    }
    parse_date(s)
}

/// A rule's target string as a timestamp (no length pre-check, as Statsig's SDK).
pub(crate) fn parse_target_timestamp(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().or_else(|| parse_date(s))
}

fn parse_date(s: &str) -> Option<i64> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|ndt| ndt.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_get_rust_float_strings() {
        assert_eq!(DynValue::new(json!(5)).string(), Some("5"));
        assert_eq!(DynValue::new(json!(5.0)).string(), Some("5"));
        assert_eq!(DynValue::new(json!(3.5)).string(), Some("3.5"));
        assert_eq!(DynValue::new(json!(5.0)).int(), Some(5));
    }

    #[test]
    fn numeric_strings_are_numbers_too() {
        let v = DynValue::new(json!("7"));
        assert_eq!(
            (v.float(), v.int(), v.timestamp()),
            (Some(7.0), Some(7), Some(7))
        );
        assert_eq!(DynValue::new(json!("abc")).float(), None);
    }

    #[test]
    fn dates_parse_to_millis() {
        assert_eq!(
            DynValue::new(json!("2024-01-01T00:00:00Z")).timestamp(),
            Some(1_704_067_200_000)
        );
        assert_eq!(
            DynValue::new(json!("2024-01-01 00:00:00")).timestamp(),
            Some(1_704_067_200_000)
        );
        assert_eq!(DynValue::new(json!("garbage")).timestamp(), None);
    }

    #[test]
    fn arrays_stringify_as_json_and_lowercase() {
        let v = DynValue::new(json!(["A", 1]));
        assert_eq!(v.string(), Some("[\"A\",1]"));
        assert_eq!(v.lower(), Some("[\"a\",1]"));
        assert_eq!(v.array.unwrap().len(), 2);
    }

    #[test]
    fn the_lowercase_view_is_kept_only_when_it_differs() {
        for (text, lower) in [
            ("user-1", "user-1"),
            ("US", "us"),
            ("\u{c9}cole", "\u{e9}cole"),
            ("\u{e9}cole", "\u{e9}cole"),
            ("\u{1c5}", "\u{1c6}"),
        ] {
            let v = DynValue::new(json!(text));
            // No copy: the lowercase view is the string view itself.
            let same = std::ptr::eq(v.lower().unwrap(), v.string().unwrap());
            assert_eq!(same, text == lower, "{text}");
            Val::Dyn(&v).with_str(true, |s| assert_eq!(s, Some(lower), "{text}"));
            Val::Dyn(&v).with_str(false, |s| assert_eq!(s, Some(text), "{text}"));
        }
    }

    #[test]
    fn bucket_digits_format_without_allocating() {
        for n in [0u64, 7, 96, 999, u64::MAX] {
            Val::Bucket(n).with_str(false, |s| assert_eq!(s, Some(n.to_string().as_str())));
        }
    }
}
