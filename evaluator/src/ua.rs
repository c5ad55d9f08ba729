//! `ua_based` fallback: browser and OS parsed from the user's `userAgent` with the uap-core
//! rules (the `uaparser` crate, as Statsig's core SDK uses), values shaped as that SDK shapes
//! them: the family name, or `major.minor.patch` with missing parts as `0`.

use std::sync::OnceLock;

use uaparser::{Parser, UserAgentParser};

use crate::condition::Name;
use crate::user::User;
use crate::value::DynValue;

/// uap-core 0.18.0's `regexes.yaml` (Apache-2.0, from the `uap-core` npm package).
static REGEXES: &[u8] = include_bytes!("../data/uap_regexes.yaml");

/// User agents longer than this are not parsed (the core SDK's bound).
const MAX_USER_AGENT_LEN: usize = 1000;

fn parser() -> Option<&'static UserAgentParser> {
    static PARSER: OnceLock<Option<UserAgentParser>> = OnceLock::new();
    PARSER
        .get_or_init(|| UserAgentParser::from_bytes(REGEXES).ok())
        .as_ref()
}

/// Builds the parser now, so the first request does not pay for it.
pub fn warm_up() {
    parser();
}

pub(crate) fn value_from_user_agent(user: &User, field: Option<&Name>) -> Option<DynValue> {
    let field = &*field?.lower;
    let ua = user.field(Some(&Name::new("userAgent")))?.string()?;
    if ua.len() > MAX_USER_AGENT_LEN {
        return None;
    }
    let parser = parser()?;
    let version = |major: Option<std::borrow::Cow<'_, str>>,
                   minor: Option<std::borrow::Cow<'_, str>>,
                   patch: Option<std::borrow::Cow<'_, str>>| {
        format!(
            "{}.{}.{}",
            major.as_deref().unwrap_or("0"),
            minor.as_deref().unwrap_or("0"),
            patch.as_deref().unwrap_or("0")
        )
    };
    let text = match field {
        "os_name" | "osname" => parser.parse_os(ua).family.into_owned(),
        "os_version" | "osversion" => {
            let os = parser.parse_os(ua);
            version(os.major, os.minor, os.patch)
        }
        "browser_name" | "browsername" => parser.parse_user_agent(ua).family.into_owned(),
        "browser_version" | "browserversion" => {
            let b = parser.parse_user_agent(ua);
            version(b.major, b.minor, b.patch)
        }
        _ => return None,
    };
    Some(DynValue::from_text(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(ua: &str, field: &str) -> Option<String> {
        let user = User::from_json(&json!({ "userAgent": ua })).unwrap();
        value_from_user_agent(&user, Some(&Name::new(field)))
            .and_then(|v| v.string().map(String::from))
    }

    #[test]
    fn parses_common_agents() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 10_3_1 like Mac OS X) AppleWebKit/603.1.30 (KHTML, like Gecko) Version/10.0 Mobile/14E304 Safari/602.1";
        assert_eq!(parse(iphone, "os_name").as_deref(), Some("iOS"));
        assert_eq!(parse(iphone, "os_version").as_deref(), Some("10.3.1"));
        assert_eq!(
            parse(iphone, "browser_name").as_deref(),
            Some("Mobile Safari")
        );
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        assert_eq!(parse(chrome, "browser_name").as_deref(), Some("Chrome"));
        assert_eq!(parse(chrome, "browser_version").as_deref(), Some("120.0.0"));
        assert_eq!(parse(chrome, "OS_NAME").as_deref(), Some("Windows"));
        assert_eq!(parse(chrome, "unknown_field"), None);
        assert_eq!(parse(&"x".repeat(1001), "os_name"), None);
    }
}
