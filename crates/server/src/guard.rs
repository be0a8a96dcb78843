//! The browser guard: no web page can drive a node.
//!
//! A node on a laptop listens on loopback and, by default, asks for no credentials. Any
//! page open in that laptop's browser could otherwise act on it: a cross-site HTML form, a
//! `text/plain` `fetch` (neither needs a CORS preflight), or a page on a domain that
//! rebinds to 127.0.0.1 after loading. Registering a stdio server runs a command, so that
//! would be code execution on the user's machine. Three rules close it, checked on every
//! route (REST, `/mcp`, health) before any handler runs:
//!
//! 1. **Host.** On a loopback listener the `Host` must be a loopback name (`localhost`,
//!    `127.0.0.1`, `[::1]`, any port) or one of `http.allowed_hosts`: a rebound domain
//!    still sends its own name. Listeners on other addresses are reached by many names and
//!    rely on authentication instead.
//! 2. **Origin.** A request that carries an `Origin` (browsers send one on every
//!    cross-origin request that is not a plain navigation) must come from a loopback origin,
//!    the node's own, or one of `http.allowed_origins`. `null` (sandboxed frames, files) is
//!    refused.
//! 3. **JSON bodies.** A request other than `GET`/`HEAD` that has a body or a
//!    `Content-Type` must say `application/json` (`POST /v1/workflows` also takes YAML):
//!    the three content types a page may send without a preflight (forms and `text/plain`)
//!    never reach a handler. Anything else is `415`.
//!
//! Refusals are `403` (Host, Origin) and `415` (content type), in the error shape of the
//! route: JSON-RPC on `/mcp`, `{"error": …}` elsewhere. They happen before the body is
//! read, so a refused request changes nothing.

use std::sync::Arc;

use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use baton_core::ErrorCode;
use serde_json::json;

use crate::error::{ApiError, status_of};

/// What the guard accepts besides loopback names and origins.
#[derive(Debug, Clone, Default)]
pub struct BrowserGuard {
    /// `Origin` values accepted besides loopback origins and the node's own (`*`: any).
    pub allowed_origins: Vec<String>,
    /// `Host` values (with port) accepted on a loopback listener besides loopback names.
    pub allowed_hosts: Vec<String>,
    /// The listener is on a loopback address: the Host rule applies.
    pub loopback_only: bool,
}

/// Media types accepted for a request body.
const JSON: &str = "application/json";
/// YAML media types, accepted where a route documents YAML (workflow definitions).
const YAML: &[&str] = &[
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
];

impl BrowserGuard {
    /// Checks a request's head; `Err` is the refusal to send instead of running it.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        has_body: bool,
    ) -> Result<(), ApiError> {
        self.check_host(headers)?;
        self.check_origin(headers)?;
        check_content_type(method, path, headers, has_body)
    }

    fn check_host(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if !self.loopback_only {
            return Ok(());
        }
        // HTTP/1.1 requires a Host; HTTP/2 sends `:authority`, which hyper exposes as the
        // URI's authority rather than a header, and which a rebound page cannot choose
        // either. A request with no Host at all comes from no browser.
        let Some(host) = headers.get(header::HOST) else {
            return Ok(());
        };
        let host = host
            .to_str()
            .map_err(|_| forbidden("the Host header is not valid ASCII".into()))?;
        if is_loopback_host(host)
            || self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host))
        {
            return Ok(());
        }
        Err(forbidden(format!(
            "Host `{host}` is not allowed: this node listens on loopback and accepts only \
             loopback names (DNS rebinding protection); add it to http.allowed_hosts to accept it"
        )))
    }

    fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin
            .to_str()
            .map_err(|_| forbidden("the Origin header is not valid ASCII".into()))?;
        if self.allowed_origins.iter().any(|o| o == origin || o == "*") {
            return Ok(());
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or("");
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !authority.is_empty()
            && (is_loopback_host(authority)
                || host.is_some_and(|h| h.eq_ignore_ascii_case(authority)))
        {
            return Ok(());
        }
        Err(forbidden(format!(
            "Origin `{origin}` is not allowed: a web page from another site cannot use this node \
             (cross-site and DNS rebinding protection); add it to http.allowed_origins to accept it"
        )))
    }
}

fn check_content_type(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    has_body: bool,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        if has_body {
            return Err(unsupported(format!(
                "a request body needs `Content-Type: {JSON}`{}",
                if takes_yaml(method, path) {
                    " (or a YAML type)"
                } else {
                    ""
                }
            )));
        }
        return Ok(());
    };
    let raw = value.to_str().unwrap_or("");
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json =
        essence == JSON || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json || (takes_yaml(method, path) && YAML.contains(&essence.as_str())) {
        return Ok(());
    }
    Err(unsupported(format!(
        "unsupported content type `{raw}`: send `Content-Type: {JSON}`{}",
        if takes_yaml(method, path) {
            " or `application/yaml`"
        } else {
            ""
        }
    )))
}

/// Routes whose body may be YAML.
fn takes_yaml(method: &Method, path: &str) -> bool {
    *method == Method::POST && path.trim_end_matches('/') == "/v1/workflows"
}

/// `localhost`, a loopback IP address, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((name, tail)) if tail.is_empty() || is_port(tail) => name,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((h, port)) if is_port(&format!(":{port}")) => h,
            _ => host,
        },
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `:` followed by one or more digits.
fn is_port(tail: &str) -> bool {
    tail.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(ErrorCode::PermissionDenied, message)
}

fn unsupported(message: String) -> ApiError {
    ApiError::new(ErrorCode::UnsupportedMediaType, message)
}

/// The middleware: runs the checks, answering a refusal in the route's error shape.
pub async fn enforce(State(guard): State<Arc<BrowserGuard>>, req: Request, next: Next) -> Response {
    let has_body = req.body().size_hint().exact() != Some(0);
    let path = req.uri().path();
    match guard.check(req.method(), path, req.headers(), has_body) {
        Ok(()) => next.run(req).await,
        Err(refusal) if path == "/mcp" => {
            let body = json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {"code": baton_mcp::protocol::INVALID_REQUEST, "message": refusal.message},
            });
            let mut resp = (status_of(refusal.code), axum::Json(body)).into_response();
            resp.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Origin"));
            resp
        }
        Err(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn loopback() -> BrowserGuard {
        BrowserGuard {
            loopback_only: true,
            ..Default::default()
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:7420",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:7420",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "localhost.evil.example",
            "evil.example",
            "10.0.0.1:7420",
            "[::1]x",
            "[::2]:1",
            "127.0.0.1:x",
            "",
            "localhost:",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn host_rule_applies_on_loopback_listeners_only() {
        let rebound = headers(&[("host", "evil.example:7420")]);
        let e = loopback()
            .check(&Method::GET, "/v1/tasks", &rebound, false)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        assert!(e.message.contains("evil.example:7420"), "{}", e.message);
        let open = BrowserGuard::default();
        assert!(
            open.check(&Method::GET, "/v1/tasks", &rebound, false)
                .is_ok()
        );
        let allowed = BrowserGuard {
            allowed_hosts: vec!["baton.test:7420".into()],
            ..loopback()
        };
        assert!(
            allowed
                .check(
                    &Method::GET,
                    "/",
                    &headers(&[("host", "BATON.test:7420")]),
                    false
                )
                .is_ok()
        );
        assert!(
            allowed
                .check(
                    &Method::GET,
                    "/",
                    &headers(&[("host", "baton.test:7421")]),
                    false
                )
                .is_err()
        );
    }

    #[test]
    fn foreign_origins_are_refused_on_every_method() {
        let g = loopback();
        for method in [Method::GET, Method::POST, Method::DELETE] {
            for origin in [
                "http://evil.example",
                "null",
                "https://evil.example:7420",
                "file://",
            ] {
                let h = headers(&[("host", "127.0.0.1:7420"), ("origin", origin)]);
                let e = g.check(&method, "/v1/servers", &h, false).unwrap_err();
                assert_eq!(e.code, ErrorCode::PermissionDenied, "{method} {origin}");
            }
        }
        for origin in [
            "http://localhost:3000",
            "http://127.0.0.1:7420",
            "https://[::1]:9",
        ] {
            let h = headers(&[("host", "127.0.0.1:7420"), ("origin", origin)]);
            assert!(
                g.check(&Method::POST, "/v1/servers", &h, false).is_ok(),
                "{origin}"
            );
        }
        // A node on a network address is its own origin under the name it is reached by.
        let open = BrowserGuard::default();
        let h = headers(&[
            ("host", "baton.internal:7420"),
            ("origin", "https://baton.internal:7420"),
        ]);
        assert!(open.check(&Method::POST, "/v1/tasks", &h, false).is_ok());
        let configured = BrowserGuard {
            allowed_origins: vec!["https://app.example.com".into()],
            ..loopback()
        };
        let h = headers(&[
            ("host", "localhost:7420"),
            ("origin", "https://app.example.com"),
        ]);
        assert!(
            configured
                .check(&Method::POST, "/v1/tasks", &h, false)
                .is_ok()
        );
    }

    #[test]
    fn bodies_must_be_json() {
        let g = loopback();
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml",
        ] {
            let h = headers(&[("content-type", ct)]);
            let e = g.check(&Method::POST, "/v1/tasks", &h, true).unwrap_err();
            assert_eq!(e.code, ErrorCode::UnsupportedMediaType, "{ct}");
            assert!(e.message.contains("application/json"), "{}", e.message);
            // Even without a body: a form may post nothing to an action URL.
            assert!(
                g.check(&Method::POST, "/v1/queues/q/pause", &h, false)
                    .is_err(),
                "{ct}"
            );
        }
        let e = g
            .check(&Method::POST, "/v1/tasks", &HeaderMap::new(), true)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedMediaType);
        for ct in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(
                g.check(
                    &Method::POST,
                    "/v1/tasks",
                    &headers(&[("content-type", ct)]),
                    true
                )
                .is_ok(),
                "{ct}"
            );
        }
        // No body, no type: action endpoints such as retry and pause.
        assert!(
            g.check(&Method::POST, "/v1/tasks/x/retry", &HeaderMap::new(), false)
                .is_ok()
        );
        assert!(
            g.check(&Method::DELETE, "/v1/tasks/x", &HeaderMap::new(), false)
                .is_ok()
        );
        // YAML only where documented.
        let yaml = headers(&[("content-type", "application/yaml")]);
        assert!(g.check(&Method::POST, "/v1/workflows", &yaml, true).is_ok());
        assert!(g.check(&Method::POST, "/v1/tasks", &yaml, true).is_err());
        // Reads are not checked.
        assert!(
            g.check(
                &Method::GET,
                "/v1/tasks",
                &headers(&[("content-type", "text/plain")]),
                true
            )
            .is_ok()
        );
    }
}
