//! Cross-origin access for browser SDKs.
//!
//! `@statsig/js-client` runs in web pages and calls the SDK endpoints (`/v1/initialize`,
//! `/v1/rgstr`, …) from the page's origin, usually not the server's. A browser hands the
//! answer to the SDK only if it carries `Access-Control-Allow-Origin`, and sends an `OPTIONS`
//! preflight first when the SDK adds a header of its own. Client keys are public by design
//! and no cookie is involved, so any origin is allowed by default, as Statsig's own API must
//! allow for its browser SDK; `--cors-origins` narrows it to a list. The console API is never
//! opened to browsers.

use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use hyper::{Method, Request, StatusCode};

use crate::http::Reply;

/// Which page origins may call the SDK endpoints from a browser.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// Any origin (`Access-Control-Allow-Origin: *`).
    #[default]
    Any,
    /// Only these origins (`https://app.example.com`), echoed back; none when empty.
    Only(Vec<HeaderValue>),
}

impl CorsOrigins {
    /// From `--cors-origins`: `*` for any origin, else a list of origins; an empty list
    /// turns cross-origin access off.
    pub fn parse(values: &[String]) -> Result<CorsOrigins, String> {
        let values: Vec<&str> = values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        if values.contains(&"*") {
            return if values.len() == 1 {
                Ok(CorsOrigins::Any)
            } else {
                Err("--cors-origins: `*` cannot be combined with named origins".into())
            };
        }
        values
            .iter()
            .map(|origin| {
                let (scheme, host) = origin.split_once("://").unwrap_or(("", ""));
                if !matches!(scheme, "http" | "https") || host.is_empty() || host.contains('/') {
                    return Err(format!(
                        "--cors-origins: {origin:?} is not an origin like https://app.example.com"
                    ));
                }
                HeaderValue::from_str(origin).map_err(|e| format!("--cors-origins: {e}"))
            })
            .collect::<Result<_, _>>()
            .map(CorsOrigins::Only)
    }

    /// The CORS headers a reply to `req` takes: none off the SDK endpoints, nor for a request
    /// without `Origin` when any origin is allowed.
    pub fn headers_for(&self, req: &Request<impl Sized>) -> Option<CorsHeaders> {
        let path = req.uri().path();
        if !(path.starts_with("/v1/") || path.starts_with("/v2/")) {
            return None;
        }
        let origin = req.headers().get(ORIGIN);
        match self {
            CorsOrigins::Any => origin.map(|_| CorsHeaders {
                allow_origin: Some(HeaderValue::from_static("*")),
                vary: false,
            }),
            // The answer depends on the origin, so caches must key on it, even when it is
            // absent or refused.
            CorsOrigins::Only(allowed) => Some(CorsHeaders {
                allow_origin: origin.and_then(|o| allowed.iter().find(|a| *a == o).cloned()),
                vary: true,
            }),
        }
    }
}

/// The CORS headers of one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsHeaders {
    /// `Access-Control-Allow-Origin`, when the request's origin is allowed.
    pub allow_origin: Option<HeaderValue>,
    /// `Vary: Origin`, when the answer depends on the origin.
    pub vary: bool,
}

impl CorsHeaders {
    /// Adds the headers to a reply.
    pub fn apply(self, reply: &mut Reply) {
        let headers = reply.headers_mut();
        if let Some(origin) = self.allow_origin {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
        if self.vary {
            headers.append(VARY, HeaderValue::from_static("origin"));
        }
    }
}

/// Whether `req` is a CORS preflight (`OPTIONS` naming the method to come).
pub fn is_preflight(req: &Request<impl Sized>) -> bool {
    req.method() == Method::OPTIONS && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight from an allowed origin: the SDK endpoints take GET and POST,
/// with whatever headers the SDK asked for (keys travel in headers), for a day.
pub fn preflight(req: &Request<impl Sized>) -> Reply {
    let mut reply = Reply::default();
    *reply.status_mut() = StatusCode::NO_CONTENT;
    let headers = reply.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    if let Some(asked) = req.headers().get(ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn parses_any_a_list_or_nothing() {
        assert_eq!(CorsOrigins::parse(&strings(&["*"])), Ok(CorsOrigins::Any));
        assert_eq!(
            CorsOrigins::parse(&strings(&["https://a.example", " http://b.example:8080"])),
            Ok(CorsOrigins::Only(vec![
                HeaderValue::from_static("https://a.example"),
                HeaderValue::from_static("http://b.example:8080"),
            ]))
        );
        assert_eq!(
            CorsOrigins::parse(&strings(&[""])),
            Ok(CorsOrigins::Only(vec![]))
        );
        for bad in [
            &["*", "https://a.example"][..],
            &["a.example"],
            &["https://a.example/app"],
        ] {
            assert!(CorsOrigins::parse(&strings(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn allows_only_browser_requests_to_sdk_endpoints_from_listed_origins() {
        let request = |path: &str, origin: Option<&str>| {
            let mut builder = Request::post(path);
            if let Some(origin) = origin {
                builder = builder.header(ORIGIN, origin);
            }
            builder.body(()).unwrap()
        };
        let any = CorsOrigins::Any;
        let listed = CorsOrigins::parse(&strings(&["https://a.example"])).unwrap();
        let allowed = |cors: &CorsOrigins, req| cors.headers_for(&req).map(|h| h.allow_origin);
        let from_a = || request("/v1/initialize", Some("https://a.example"));
        assert_eq!(
            allowed(&any, from_a()),
            Some(Some(HeaderValue::from_static("*")))
        );
        assert_eq!(
            allowed(&listed, from_a()),
            Some(Some(HeaderValue::from_static("https://a.example")))
        );
        let from_b = || {
            request(
                "/v2/download_config_specs/k.json",
                Some("https://b.example"),
            )
        };
        assert_eq!(
            allowed(&any, from_b()),
            Some(Some(HeaderValue::from_static("*")))
        );
        assert_eq!(allowed(&listed, from_b()), Some(None));
        let not_a_browser = || request("/v1/initialize", None);
        assert_eq!(allowed(&any, not_a_browser()), None);
        assert_eq!(allowed(&listed, not_a_browser()), Some(None));
        let console = || request("/console/v1/gates", Some("https://a.example"));
        assert_eq!(allowed(&any, console()), None);
        assert_eq!(allowed(&listed, console()), None);
        // A listed-origins answer always varies by origin; an any-origin one never does.
        assert!(listed.headers_for(&not_a_browser()).unwrap().vary);
        assert!(!any.headers_for(&from_a()).unwrap().vary);
    }
}
