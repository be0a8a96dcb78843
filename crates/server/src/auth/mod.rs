//! Who is asking, and may they: authentication, access control, rate limits and the
//! audit trail of every route, in one middleware that runs after the browser guard and
//! before any handler.
//!
//! 1. **Public routes** (health, the OpenAPI document, the index page, OAuth protected
//!    resource metadata) are served to anyone.
//! 2. **Credentials.** `Authorization: Bearer <secret>`: an API key (`bk_…`, checked
//!    against the node's in-memory copy of the keys, see `baton_engine::keys`) or, with
//!    `[auth.jwt]`, a JWT from the configured issuer. A credential that is malformed,
//!    unknown, expired or revoked is `401` with the reason, whether or not the node
//!    requires credentials. Without one: `401` when `[auth] required` is on; otherwise the
//!    request is trusted and acts as its `Baton-Principal` (default `anonymous`), which is
//!    the laptop quick start. With authentication on, `Baton-Principal` is ignored.
//! 3. **Acting for another tenant** takes an `admin` credential and a `Baton-Act-As`
//!    header, and is audited as such.
//! 4. **Scopes.** Each route needs the scope its [`policy`] rule names; `/mcp` checks each
//!    JSON-RPC method itself. A missing scope is `403` naming it.
//! 5. **Quotas.** A credential's rate limit (a token bucket per key or token principal,
//!    per node) gives `429` with `Retry-After` and `RateLimit` headers; its `max_active`
//!    refuses submissions that would take the principal's active tasks over it.
//! 6. **Audit.** Every state-changing request and every refusal is recorded (see
//!    `baton_engine::audit`), with the request's id (`x-request-id`, echoed on every
//!    answer) and peer address. Secrets never are.

pub mod bearer;
pub mod jwt;
pub mod limits;
pub mod policy;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use baton_core::ErrorCode;
use baton_core::auth::{Identity, KEY_PREFIX, Quota, Rate, RequestOrigin, Scope};
use baton_engine::Engine;
use baton_store::NewAuditEntry;
use serde_json::{Value, json};

use self::jwt::JwtVerifier;
use self::limits::{RateLimits, Verdict};
use self::policy::Rule;
use crate::error::{ApiError, status_of};

/// The header an admin credential names the principal it acts for with.
pub const ACT_AS: &str = "baton-act-as";
/// The request id header: taken from the client when it is sane, else made; echoed on
/// every answer and kept in the audit log.
pub const REQUEST_ID: &str = "x-request-id";

/// How the node authenticates (from `[auth]`).
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// Requests without a credential are refused.
    pub required: bool,
    /// The rate of credentials that set none (API keys without one, token principals).
    pub rate_limit: Option<Rate>,
    /// The `max_active` of credentials that set none.
    pub max_active: Option<u64>,
    /// How clients reach the node (`https://baton.example.com`), for the protected
    /// resource metadata; default: from the request's `Host`.
    pub public_url: Option<String>,
    /// OAuth authorization servers that issue tokens for this node (RFC 9728).
    pub authorization_servers: Vec<String>,
    /// The listener speaks TLS (the scheme of derived URLs).
    pub tls: bool,
    /// Largest request body (a batch is read to count its tasks against `max_active`).
    pub max_body_bytes: usize,
}

/// The middleware's state.
pub struct Auth {
    engine: Engine,
    settings: AuthSettings,
    jwt: Option<Arc<JwtVerifier>>,
    limits: RateLimits,
    failures: FailureLog,
}

/// A checked caller.
struct Who {
    identity: Identity,
    /// The rate bucket it draws from.
    bucket: String,
    rate: Option<Rate>,
    max_active: Option<u64>,
}

/// A refused credential.
struct Refused {
    error: ApiError,
    /// What was offered, for the audit log (`key:<id>`, `jwt`, `-`); never the secret.
    offered: String,
}

impl Auth {
    pub fn new(engine: Engine, settings: AuthSettings, jwt: Option<Arc<JwtVerifier>>) -> Auth {
        Auth {
            engine,
            settings,
            jwt,
            limits: RateLimits::default(),
            failures: FailureLog::default(),
        }
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    async fn identify(&self, headers: &HeaderMap) -> Result<Who, Refused> {
        let unauthenticated = |message: String, offered: &str| Refused {
            error: ApiError::new(ErrorCode::Unauthenticated, message),
            offered: offered.to_string(),
        };
        let defaults = |identity: Identity, bucket: String| Who {
            identity,
            bucket,
            rate: self.settings.rate_limit,
            max_active: self.settings.max_active,
        };
        match bearer::token(headers) {
            Err(e) => Err(unauthenticated(e.to_string(), "-")),
            Ok(Some(token)) if token.starts_with(KEY_PREFIX) => {
                match self.engine.authenticate_key(token) {
                    Ok(k) => Ok(Who {
                        bucket: format!("key:{}", k.key_id),
                        rate: k.rate_limit.or(self.settings.rate_limit),
                        max_active: k.max_active.or(self.settings.max_active),
                        identity: k.identity,
                    }),
                    Err(why) => {
                        let offered = baton_core::auth::key_id_of(token)
                            .map_or_else(|| "key:?".to_string(), |id| format!("key:{id}"));
                        Err(unauthenticated(why.to_string(), &offered))
                    }
                }
            }
            Ok(Some(token)) => match &self.jwt {
                Some(verifier) if jwt::looks_like_jwt(token) => match verifier.verify(token).await {
                    Ok(identity) => {
                        let bucket = format!("principal:{}", identity.principal);
                        Ok(defaults(identity, bucket))
                    }
                    // The issuer's keys could not be fetched: the node's trouble, not
                    // the token's; worth retrying.
                    Err(why @ jwt::JwtRefused::KeysUnavailable(_)) => {
                        let mut error = ApiError::new(
                            ErrorCode::Unavailable,
                            format!("cannot check the token now: {why}"),
                        );
                        error.retry_after = Some(Duration::from_secs(5));
                        Err(Refused {
                            error,
                            offered: "jwt".into(),
                        })
                    }
                    Err(why) => Err(unauthenticated(
                        format!("the token was refused: {why}"),
                        "jwt",
                    )),
                },
                Some(_) => Err(unauthenticated(
                    "the bearer token is neither a Baton API key (`bk_…`) nor a JWT".into(),
                    "-",
                )),
                None => Err(unauthenticated(
                    "the bearer token is not a Baton API key (they begin `bk_`); this node accepts no other tokens".into(),
                    "-",
                )),
            },
            Ok(None) if self.settings.required => Err(unauthenticated(
                "this node requires a credential: send `Authorization: Bearer <API key or token>`"
                    .into(),
                "-",
            )),
            Ok(None) => {
                let principal = baton_core::principal::from_header(
                    headers
                        .get(baton_core::principal::HEADER)
                        .map(HeaderValue::as_bytes),
                )
                .map_err(|m| Refused {
                    error: ApiError::invalid(m),
                    offered: "none".into(),
                })?;
                let bucket = format!("principal:{principal}");
                Ok(defaults(Identity::trusted(principal), bucket))
            }
        }
    }

    fn audit(&self, origin: &RequestOrigin, event: Event<'_>) {
        self.engine.audit(NewAuditEntry {
            at: self.engine.now(),
            principal: event.principal.to_string(),
            credential: event.credential.to_string(),
            action: event.action.to_string(),
            target: event.target.map(String::from),
            outcome: event.outcome.to_string(),
            status: Some(event.status.as_u16()),
            remote: origin.remote.clone(),
            request_id: origin.request_id.clone(),
            detail: event.detail,
        });
    }

    /// The URL of this node's protected resource metadata.
    fn metadata_url(&self, headers: &HeaderMap) -> Option<String> {
        Some(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            self.base_url(headers)?
        ))
    }

    fn base_url(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(u) = &self.settings.public_url {
            return Some(u.trim_end_matches('/').to_string());
        }
        let host = headers.get(header::HOST)?.to_str().ok()?;
        let scheme = if self.settings.tls { "https" } else { "http" };
        Some(format!("{scheme}://{host}"))
    }

    /// How many more tasks `who` may make active now; `None`: no limit.
    async fn room(&self, who: &Who) -> Result<Option<u64>, ApiError> {
        let Some(max) = who.max_active else {
            return Ok(None);
        };
        let active = self
            .engine
            .queues_view(Some(&who.identity.principal))
            .await?
            .active_tasks;
        Ok(Some(max.saturating_sub(active)))
    }
}

/// One audit entry's particulars.
struct Event<'a> {
    principal: &'a str,
    credential: &'a str,
    action: &'a str,
    target: Option<&'a str>,
    outcome: &'a str,
    status: StatusCode,
    detail: Option<Value>,
}

/// The middleware (see the module docs).
pub async fn enforce(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let request_id = request_id(req.headers());
    let origin = RequestOrigin {
        remote: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string()),
        request_id: Some(request_id.clone()),
    };
    req.extensions_mut().insert(origin.clone());
    let rule = policy::rule_for(req.method(), req.uri().path());
    let mut resp = match rule {
        Some(r) if r.public => next.run(req).await,
        _ => gate(&auth, req, next, rule, &origin).await,
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

async fn gate(
    auth: &Auth,
    mut req: Request,
    next: Next,
    rule: Option<Rule>,
    origin: &RequestOrigin,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mcp = path == "/mcp";
    let action = rule.map_or("unknown", |r| r.action);
    let target = rule.and_then(|r| r.target).and_then(|i| {
        path.trim_start_matches('/')
            .split('/')
            .nth(i)
            .map(String::from)
    });
    let target = target.as_deref();

    let mut who = match auth.identify(req.headers()).await {
        Ok(w) => w,
        Err(refused) => {
            let status = status_of(refused.error.code);
            if auth.failures.should_record(origin) {
                auth.audit(
                    origin,
                    Event {
                        principal: "-",
                        credential: &refused.offered,
                        action,
                        target,
                        outcome: "unauthenticated",
                        status,
                        detail: Some(json!({"reason": refused.error.message})),
                    },
                );
            }
            return refusal(auth, req.headers(), refused.error, mcp);
        }
    };

    if let Some(value) = req.headers().get(ACT_AS) {
        let as_principal = baton_core::principal::from_header(Some(value.as_bytes()));
        let denied = |message: String, code: ErrorCode| {
            let e = ApiError::new(code, message);
            auth.audit(
                origin,
                Event {
                    principal: &who.identity.principal,
                    credential: &who.identity.credential,
                    action,
                    target,
                    outcome: "denied",
                    status: status_of(e.code),
                    detail: Some(json!({"reason": e.message, "act_as": String::from_utf8_lossy(value.as_bytes())})),
                },
            );
            refusal(auth, req.headers(), e, mcp)
        };
        if !who.identity.is_admin() {
            return denied(
                "only an admin credential may act for another principal (Baton-Act-As)".into(),
                ErrorCode::PermissionDenied,
            );
        }
        match as_principal {
            Ok(p) => who.identity.principal = p,
            Err(m) => {
                return denied(
                    m.replace("Baton-Principal", "Baton-Act-As"),
                    ErrorCode::InvalidArgument,
                );
            }
        }
    }

    let record = |outcome: &str, status: StatusCode, detail: Option<Value>| {
        auth.audit(
            origin,
            Event {
                principal: &who.identity.principal,
                credential: &who.identity.credential,
                action,
                target,
                outcome,
                status,
                detail,
            },
        );
    };

    if let Some(scope) = rule.and_then(|r| r.scope)
        && let Err(missing) = who.identity.require(scope)
    {
        let e = ApiError::new(ErrorCode::PermissionDenied, missing.to_string());
        record("denied", status_of(e.code), Some(json!({"scope": scope})));
        return refusal(auth, req.headers(), e, mcp);
    }

    let verdict = who
        .rate
        .map(|rate| (rate, auth.limits.check(&who.bucket, rate)));
    if let Some((rate, v @ Verdict::Refused { retry_after })) = verdict {
        let mut e = ApiError::new(
            ErrorCode::ResourceExhausted,
            format!(
                "rate limit of {rate} for this credential reached; retry in {}s",
                retry_after.as_secs().max(1)
            ),
        );
        e.retry_after = Some(retry_after);
        record(
            "rate_limited",
            status_of(e.code),
            Some(json!({"rate": rate.to_string()})),
        );
        let mut resp = refusal(auth, req.headers(), e, mcp);
        limits::headers(resp.headers_mut(), rate, v);
        return resp;
    }

    if rule.is_some_and(|r| r.submits) {
        let room = match auth.room(&who).await {
            Ok(r) => r,
            Err(e) => return refusal(auth, req.headers(), e, mcp),
        };
        if let Some(room) = room {
            let (wanted, rebuilt) = match tasks_in(req, auth.settings.max_body_bytes).await {
                Ok(x) => x,
                Err(e) => return e.into_response(),
            };
            req = rebuilt;
            if wanted > room {
                let max = who.max_active.unwrap_or_default();
                let mut e = ApiError::new(
                    ErrorCode::ResourceExhausted,
                    format!(
                        "this credential may have at most {max} active tasks ({room} more now); retry when some have finished"
                    ),
                );
                e.retry_after = Some(Duration::from_secs(1));
                record(
                    "rate_limited",
                    status_of(e.code),
                    Some(json!({"max_active": max})),
                );
                return refusal(auth, req.headers(), e, mcp);
            }
        }
    }

    req.extensions_mut().insert(who.identity.clone());
    req.extensions_mut().insert(Quota {
        max_active: who.max_active,
    });
    let mut resp = next.run(req).await;
    // MCP requests are audited per JSON-RPC method by the MCP layer.
    if policy::changes_state(&method) && !mcp {
        let status = resp.status();
        let outcome = if status.is_success() {
            "ok"
        } else if status.is_client_error() {
            "refused"
        } else {
            "failed"
        };
        record(outcome, status, None);
    }
    if let Some((rate, v)) = verdict {
        limits::headers(resp.headers_mut(), rate, v);
    }
    resp
}

/// How many tasks a submission would make active: the length of a batch's `tasks`, the
/// number of a workflow's `steps`, else one. The body is read (it is small: the router's
/// limit applies) and put back.
async fn tasks_in(req: Request, limit: usize) -> Result<(u64, Request), ApiError> {
    let path = req.uri().path();
    let field = if path.ends_with("/batch") {
        "tasks"
    } else if path == "/v1/workflows" {
        "steps"
    } else {
        return Ok((1, req));
    };
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| crate::rest::extract::too_large(Some(limit)))?;
    let n = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get(field).map(|f| f.as_array().map_or(1, Vec::len)))
        .unwrap_or(1) as u64;
    Ok((n.max(1), Request::from_parts(parts, Body::from(bytes))))
}

/// A refusal in the route's shape: JSON-RPC on `/mcp`, `{"error"}` elsewhere; a `401`
/// says how to authenticate (RFC 6750, and RFC 9728's `resource_metadata` for MCP
/// clients).
fn refusal(auth: &Auth, headers: &HeaderMap, e: ApiError, mcp: bool) -> Response {
    let status = status_of(e.code);
    let challenge = (status == StatusCode::UNAUTHORIZED).then(|| {
        let mut c = String::from("Bearer realm=\"baton\"");
        if headers.get(header::AUTHORIZATION).is_some() {
            c.push_str(", error=\"invalid_token\"");
        }
        if let Some(url) = auth.metadata_url(headers) {
            c.push_str(&format!(", resource_metadata=\"{url}\""));
        }
        c
    });
    let retry_after = e.retry_after;
    let mut resp = if mcp {
        let body = json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": e.code.jsonrpc_code(), "message": e.message, "data": {"code": e.code.as_str()}},
        });
        let mut r = (status, axum::Json(body)).into_response();
        if let Some(after) = retry_after
            && let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    } else {
        e.into_response()
    };
    if let Some(c) = challenge
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// The client's request id if it is a sane one (1 to 128 of `A-Za-z0-9._-`), else a
/// new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .map_or_else(|| format!("{:032x}", rand::random::<u128>()), String::from)
}

/// Bounds what failed authentication writes to the audit log: a client trying many keys
/// gets its first [`FAILURES_PER_MINUTE`] failures a minute recorded one by one, then one
/// summary entry per minute with how many more there were.
#[derive(Default)]
struct FailureLog {
    by_peer: Mutex<HashMap<Option<IpAddr>, (Instant, u64)>>,
}

const FAILURES_PER_MINUTE: u64 = 20;

impl FailureLog {
    fn should_record(&self, origin: &RequestOrigin) -> bool {
        let peer = origin
            .remote
            .as_deref()
            .and_then(|r| r.parse::<SocketAddr>().ok())
            .map(|a| a.ip());
        let now = Instant::now();
        let mut map = self.by_peer.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (since, _)| now.duration_since(*since) < Duration::from_secs(60));
        }
        let entry = map.entry(peer).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            let suppressed = entry.1.saturating_sub(FAILURES_PER_MINUTE);
            *entry = (now, 0);
            if suppressed > 0 {
                tracing::warn!(peer = ?peer, suppressed, "authentication failures not recorded one by one in the audit log");
            }
        }
        entry.1 += 1;
        entry.1 <= FAILURES_PER_MINUTE
    }
}

/// OAuth 2.0 Protected Resource Metadata (RFC 9728) for `/mcp`: what MCP clients read to
/// find where to get a token.
pub async fn resource_metadata(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> Response {
    let Some(base) = auth.base_url(&headers) else {
        return ApiError::invalid("send a Host header, or set auth.public_url").into_response();
    };
    axum::Json(json!({
        "resource": format!("{base}/mcp"),
        "authorization_servers": auth.settings.authorization_servers,
        "bearer_methods_supported": ["header"],
        "scopes_supported": Scope::ALL.map(Scope::as_str),
        "resource_name": "Baton",
        "resource_documentation": format!("{base}/openapi.json"),
    }))
    .into_response()
}

/// Whether `method` on `path` is served without a credential.
pub fn is_public(method: &Method, path: &str) -> bool {
    policy::rule_for(method, path).is_some_and(|r| r.public)
}
