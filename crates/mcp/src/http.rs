//! Streamable HTTP at `/mcp`, for both protocol eras on one endpoint.
//!
//! - `initialize` begins a legacy session: the answer carries `Mcp-Session-Id`, whose
//!   text is the session's state (see [`crate::session`]), so any node serves it.
//! - A request whose `_meta` names a protocol version is a self-describing 2026-07-28
//!   request; its `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*`
//!   headers must mirror the body (`-32020`, HTTP 400, otherwise).
//! - A request answers with plain JSON when it is quick and silent; when it has something
//!   to send first (progress, an elicitation) or takes longer than a moment, the answer
//!   becomes an SSE stream with keep-alive comments, ending with the response.
//! - Closing a 2026-07-28 response stream cancels the request (and a waiting call's task);
//!   closing a legacy one does not (legacy clients cancel explicitly).
//! - `GET` opens a legacy session's notification stream (`notifications/tasks/status`,
//!   `notifications/tools/list_changed`); `DELETE` ends a legacy session. 2026-07-28 has
//!   neither (405).
//! - DNS rebinding and cross-site protection (Host, Origin, JSON bodies) is the node's,
//!   applied to every route before this one (`baton_server::guard`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::protocol::negotiate;
use baton_core::auth::{Identity, Quota, RequestOrigin};

use crate::protocol::{self, Incoming, RpcError};
use crate::session::{self, Ctx, Era, Session};
use crate::state::McpService;

/// `/mcp`, ready to be mounted next to the REST API.
pub fn router(service: Arc<McpService>) -> Router {
    Router::new()
        .route("/mcp", any(endpoint))
        .with_state(service)
}

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// How long a request may stay silent before its answer turns into an SSE stream (so
/// that proxies see bytes and keep-alives flow).
const SSE_AFTER: Duration = Duration::from_millis(500);

async fn endpoint(State(service): State<Arc<McpService>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // The node's authentication put the caller's identity on the request; a router used
    // without it (tests) trusts the `Baton-Principal` header, as a node without
    // authentication does.
    let identity = match parts.extensions.get::<Identity>() {
        Some(id) => id.clone(),
        None => match baton_core::principal::from_header(
            parts
                .headers
                .get(baton_core::principal::HEADER)
                .map(HeaderValue::as_bytes),
        ) {
            Ok(p) => Identity::trusted(p),
            Err(why) => {
                return rpc_error_response(
                    StatusCode::BAD_REQUEST,
                    None,
                    &RpcError::new(protocol::INVALID_REQUEST, why),
                );
            }
        },
    };
    let caller = Caller {
        identity,
        quota: parts.extensions.get::<Quota>().copied().unwrap_or_default(),
        origin: RequestOrigin {
            remote: parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.to_string()),
            request_id: parts
                .extensions
                .get::<RequestOrigin>()
                .and_then(|o| o.request_id.clone()),
        },
    };
    match parts.method {
        Method::POST => post(service, parts.headers, body, caller).await,
        Method::GET => open_stream(service, &parts.headers, caller.identity),
        Method::DELETE => end_session(&service, &parts.headers, &caller.identity.principal).await,
        _ => method_not_allowed(),
    }
}

/// Who sent a request, as the node's authentication found them.
struct Caller {
    identity: Identity,
    quota: Quota,
    origin: RequestOrigin,
}

fn method_not_allowed() -> Response {
    let mut r = rpc_error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        &RpcError::new(
            protocol::INVALID_REQUEST,
            "this endpoint takes POST (and GET/DELETE within a legacy session)",
        ),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

fn rpc_error_response(status: StatusCode, id: Option<&Value>, e: &RpcError) -> Response {
    (status, axum::Json(protocol::error_response(id, e))).into_response()
}

// ---- POST -----------------------------------------------------------------------------

async fn post(
    service: Arc<McpService>,
    headers: HeaderMap,
    body: Body,
    caller: Caller,
) -> Response {
    let limit = service.settings.max_message_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return rpc_error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                &RpcError::new(
                    protocol::INVALID_REQUEST,
                    format!(
                        "message too large: this server accepts at most {limit} bytes (mcp.max_message_bytes)"
                    ),
                ),
            );
        }
    };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
        && let Ok(Value::Array(messages)) = serde_json::from_slice::<Value>(&bytes)
    {
        return batch(service, &headers, messages, caller).await;
    }
    let incoming = match protocol::parse(&bytes) {
        Ok(m) => m,
        Err((id, e)) => return rpc_error_response(StatusCode::BAD_REQUEST, id.as_ref(), &e),
    };
    let session_id = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    match incoming {
        Incoming::Request { id, method, params } => {
            // 2026-07-28 has no handshake: `initialize` sent as a 2026-07-28 request is a
            // method that does not exist.
            let modern = headers.get(VERSION_HEADER).and_then(header_text).as_deref()
                == Some(protocol::V_2026)
                || protocol::meta(&params)
                    .and_then(|m| m.get(protocol::META_PROTOCOL_VERSION))
                    .is_some();
            if method == "initialize" && !modern {
                return initialize(&service, id, params, caller).await;
            }
            let (era, session) = match request_era(
                &service,
                &headers,
                session_id.as_deref(),
                &caller.identity.principal,
                &method,
                &params,
            ) {
                Ok(x) => x,
                Err((status, e)) => return rpc_error_response(status, Some(&id), &e),
            };
            serve_request(service, &headers, id, method, params, era, session, caller).await
        }
        Incoming::Notification { .. } | Incoming::Response { .. }
            if session_id
                .as_deref()
                .is_some_and(|sid| service.sessions.is_ended(sid)) =>
        {
            rpc_error_response(
                StatusCode::NOT_FOUND,
                None,
                &RpcError::new(
                    protocol::INVALID_REQUEST,
                    "the session was ended: initialize a new one",
                ),
            )
        }
        Incoming::Notification { method, params } => {
            // 2026-07-28 defines no client notifications over HTTP (a closed stream is the
            // cancellation); legacy ones reach their session.
            if let Some(sid) = session_id.as_deref()
                && session::decode_session_id(
                    service.session_key(),
                    sid,
                    &caller.identity.principal,
                )
                .is_some()
            {
                service.handle_notification(&method, &params, &service.sessions.get(sid));
            }
            StatusCode::ACCEPTED.into_response()
        }
        Incoming::Response { id, result } => {
            if let Some(sid) = session_id.as_deref()
                && session::decode_session_id(
                    service.session_key(),
                    sid,
                    &caller.identity.principal,
                )
                .is_some()
            {
                service.sessions.get(sid).deliver(&id, result);
            }
            StatusCode::ACCEPTED.into_response()
        }
    }
}

/// A JSON-RPC batch: only within a session that negotiated 2025-03-26 (the one version
/// that has them); answered with one JSON array.
async fn batch(
    service: Arc<McpService>,
    headers: &HeaderMap,
    messages: Vec<Value>,
    caller: Caller,
) -> Response {
    let refuse = |m: String| {
        rpc_error_response(
            StatusCode::BAD_REQUEST,
            None,
            &RpcError::new(protocol::INVALID_REQUEST, m),
        )
    };
    let Some((sid, era)) = legacy_session(&service, headers, &caller.identity.principal) else {
        return refuse(format!(
            "JSON-RPC batches are sent within a session that negotiated {} (send one message per request otherwise)",
            crate::dispatch::BATCH_VERSION
        ));
    };
    if era.version() != crate::dispatch::BATCH_VERSION {
        return refuse(format!(
            "this session speaks {}, which has no JSON-RPC batches (only {} has): send one message per request",
            era.version(),
            crate::dispatch::BATCH_VERSION
        ));
    }
    if messages.is_empty() {
        return refuse("an empty batch".into());
    }
    let session = service.sessions.get(&sid);
    // What the requests send on their way (progress, logs) has nowhere to go: a batch is
    // answered with one JSON array.
    let (out, _discarded) = mpsc::unbounded_channel();
    let answers = service
        .handle_batch(messages, &session, |id| Ctx {
            request_id: id.clone(),
            era: era.clone(),
            principal: caller.identity.principal.clone(),
            identity: caller.identity.clone(),
            quota: caller.quota,
            origin: caller.origin.clone(),
            out: out.clone(),
            session: session.clone(),
            cancel: session.begin(id),
            disconnect_cancels: false,
        })
        .await;
    match answers {
        Some(a) => axum::Json(Value::Array(a)).into_response(),
        None => StatusCode::ACCEPTED.into_response(),
    }
}

async fn initialize(
    service: &Arc<McpService>,
    id: Value,
    params: Value,
    caller: Caller,
) -> Response {
    let asked = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = negotiate(asked);
    let capabilities = params
        .get("capabilities")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({}));
    let sid = session::session_id(
        service.session_key(),
        version,
        &capabilities,
        &caller.identity.principal,
    );
    let era = Era::Legacy {
        version: version.to_string(),
        capabilities,
    };
    let (out, _rx) = mpsc::unbounded_channel();
    let ctx = Ctx {
        request_id: id.clone(),
        era,
        principal: caller.identity.principal.clone(),
        identity: caller.identity,
        quota: caller.quota,
        origin: caller.origin,
        out,
        session: Session::new(),
        cancel: Default::default(),
        disconnect_cancels: false,
    };
    let body = match service.handle_request("initialize", params, &ctx).await {
        Ok(Some(result)) => protocol::response(&id, result),
        Ok(None) => protocol::error_response(
            Some(&id),
            &RpcError::new(protocol::INTERNAL_ERROR, "no answer"),
        ),
        Err(e) => protocol::error_response(Some(&id), &e),
    };
    let mut r = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&sid) {
        r.headers_mut().insert(SESSION_HEADER, v);
    }
    r
}

type Refusal = (StatusCode, RpcError);

/// The era of a request that is not `initialize`, and its session (legacy) or a fresh
/// one (2026-07-28: nothing outlives the request).
fn request_era(
    service: &McpService,
    headers: &HeaderMap,
    session_id: Option<&str>,
    principal: &str,
    method: &str,
    params: &Value,
) -> Result<(Era, Arc<Session>), Refusal> {
    let bad = |e: RpcError| (StatusCode::BAD_REQUEST, e);
    let header_version = headers.get(VERSION_HEADER).and_then(header_text);
    if let Some(meta) = protocol::meta(params)
        && let Some(v) = meta.get(protocol::META_PROTOCOL_VERSION)
    {
        let version = v.as_str().unwrap_or_default();
        if let Some(h) = header_version.as_deref()
            && h != version
        {
            return Err(bad(mismatch(format!(
                "Header mismatch: MCP-Protocol-Version header `{h}` does not match _meta protocolVersion `{version}`"
            ))));
        }
        if version != protocol::V_2026 {
            return Err(bad(RpcError::new(
                protocol::UNSUPPORTED_PROTOCOL_VERSION,
                format!("unsupported protocol version `{version}` in _meta; this server speaks {} without a handshake (older versions begin with initialize)", protocol::V_2026),
            )
            .with_data(json!({"supported": [protocol::V_2026], "requested": v}))));
        }
        let capabilities = meta.get(protocol::META_CLIENT_CAPABILITIES).cloned();
        let Some(capabilities) = capabilities.filter(Value::is_object) else {
            return Err(bad(RpcError::invalid_params(format!(
                "_meta[\"{}\"] (an object) is required on every {} request",
                protocol::META_CLIENT_CAPABILITIES,
                protocol::V_2026
            ))));
        };
        check_headers(service, headers, method, params, version).map_err(bad)?;
        return Ok((
            Era::Modern {
                version: version.to_string(),
                capabilities,
            },
            Session::new(),
        ));
    }
    if header_version.as_deref() == Some(protocol::V_2026) && session_id.is_none() {
        // A 2026-07-28 request (by its header) that does not describe itself.
        return Err(bad(RpcError::invalid_params(format!(
            "a {} request carries _meta[\"{}\"] and _meta[\"{}\"]",
            protocol::V_2026,
            protocol::META_PROTOCOL_VERSION,
            protocol::META_CLIENT_CAPABILITIES
        ))));
    }
    let Some(sid) = session_id else {
        return Err(bad(RpcError::new(
            protocol::INVALID_REQUEST,
            format!(
                "no Mcp-Session-Id: begin a session with initialize, or send {} requests with _meta[\"{}\"] and _meta[\"{}\"]",
                protocol::V_2026,
                protocol::META_PROTOCOL_VERSION,
                protocol::META_CLIENT_CAPABILITIES
            ),
        )));
    };
    let era = (!service.sessions.is_ended(sid))
        .then(|| session::decode_session_id(service.session_key(), sid, principal))
        .flatten();
    let Some(era) = era else {
        return Err((
            StatusCode::NOT_FOUND,
            RpcError::new(
                protocol::INVALID_REQUEST,
                "unknown session: initialize a new one",
            ),
        ));
    };
    if let Some(v) = headers.get(VERSION_HEADER).and_then(|v| v.to_str().ok())
        && v != era.version()
    {
        return Err(bad(RpcError::new(
            protocol::INVALID_REQUEST,
            format!(
                "MCP-Protocol-Version `{v}` is not the version this session negotiated (`{}`)",
                era.version()
            ),
        )));
    }
    Ok((era, service.sessions.get(sid)))
}

/// Header values that are not plain visible ASCII travel as `=?base64?…?=`.
fn header_text(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    match s
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
        }
        None => Some(s.to_string()),
    }
}

fn mismatch(message: String) -> RpcError {
    RpcError::new(protocol::HEADER_MISMATCH, message)
}

/// The 2026-07-28 header mirrors of the body.
fn check_headers(
    service: &McpService,
    headers: &HeaderMap,
    method: &str,
    params: &Value,
    version: &str,
) -> Result<(), RpcError> {
    let get = |name: &str| headers.get(name).and_then(header_text);
    match get(VERSION_HEADER) {
        Some(v) if v == version => {}
        Some(v) => {
            return Err(mismatch(format!(
                "Header mismatch: MCP-Protocol-Version header `{v}` does not match _meta protocolVersion `{version}`"
            )));
        }
        None => {
            return Err(mismatch(
                "Header mismatch: the MCP-Protocol-Version header is required".into(),
            ));
        }
    }
    match get("mcp-method") {
        Some(m) if m == method => {}
        Some(m) => {
            return Err(mismatch(format!(
                "Header mismatch: Mcp-Method header `{m}` does not match body method `{method}`"
            )));
        }
        None => {
            return Err(mismatch(
                "Header mismatch: the Mcp-Method header is required".into(),
            ));
        }
    }
    let name_field = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    };
    if let Some(field) = name_field
        && let Some(body) = params.get(field).and_then(Value::as_str)
    {
        match get("mcp-name") {
            Some(n) if n == body => {}
            Some(n) => {
                return Err(mismatch(format!(
                    "Header mismatch: Mcp-Name header `{n}` does not match body {field} `{body}`"
                )));
            }
            None => {
                return Err(mismatch(format!(
                    "Header mismatch: the Mcp-Name header is required for {method}"
                )));
            }
        }
    }
    if method == "tools/call" {
        check_param_headers(service, headers, params)?;
    }
    Ok(())
}

/// Tool arguments whose schema property carries `x-mcp-header: H` travel as `Mcp-Param-H`.
fn check_param_headers(
    service: &McpService,
    headers: &HeaderMap,
    params: &Value,
) -> Result<(), RpcError> {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return Ok(());
    };
    let Some(tool) = service.engine.tools().resolve(name) else {
        return Ok(());
    };
    let Some(props) = tool
        .info
        .input_schema
        .get("properties")
        .and_then(Value::as_object)
    else {
        return Ok(());
    };
    for (prop, schema) in props {
        let Some(h) = schema.get("x-mcp-header").and_then(Value::as_str) else {
            continue;
        };
        let value = params
            .pointer(&format!("/arguments/{prop}"))
            .filter(|v| !v.is_null());
        let Some(value) = value else { continue };
        let header_name = format!("mcp-param-{}", h.to_ascii_lowercase());
        let Some(sent) = headers.get(header_name.as_str()).and_then(header_text) else {
            return Err(mismatch(format!(
                "Header mismatch: the Mcp-Param-{h} header is required (argument `{prop}`)"
            )));
        };
        let same = match value {
            Value::String(s) => *s == sent,
            Value::Bool(b) => sent == b.to_string(),
            Value::Number(n) => sent
                .parse::<i64>()
                .ok()
                .zip(n.as_i64())
                .is_some_and(|(a, b)| a == b),
            _ => true,
        };
        if !same {
            return Err(mismatch(format!(
                "Header mismatch: Mcp-Param-{h} header `{sent}` does not match argument `{prop}`"
            )));
        }
    }
    Ok(())
}

fn accepts_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream") || v.contains("*/*"))
}

/// The HTTP status of an error answer: 2026-07-28 maps a few codes (legacy answers 200).
fn error_status(era: &Era, e: &RpcError) -> StatusCode {
    if !era.is_modern() {
        return StatusCode::OK;
    }
    match e.code {
        protocol::HEADER_MISMATCH
        | protocol::MISSING_CLIENT_CAPABILITY
        | protocol::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        protocol::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

type Answer = Result<Option<Value>, RpcError>;

#[allow(clippy::too_many_arguments)]
async fn serve_request(
    service: Arc<McpService>,
    headers: &HeaderMap,
    id: Value,
    method: String,
    params: Value,
    era: Era,
    session: Arc<Session>,
    caller: Caller,
) -> Response {
    let (out, mut rx) = mpsc::unbounded_channel();
    let cancel = session.begin(&id);
    let disconnect_cancels = era.is_modern();
    let ctx = Ctx {
        request_id: id.clone(),
        era: era.clone(),
        principal: caller.identity.principal.clone(),
        identity: caller.identity,
        quota: caller.quota,
        origin: caller.origin,
        out,
        session: session.clone(),
        cancel,
        disconnect_cancels,
    };
    let request_id = id.clone();
    let mut handler = tokio::spawn(async move {
        let answer = service.handle_request(&method, params, &ctx).await;
        ctx.session.end(&ctx.request_id);
        answer
    });
    let sse = accepts_sse(headers);
    let mut first = Vec::new();
    let timer = tokio::time::sleep(SSE_AFTER);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            biased;
            answer = &mut handler => {
                let answer = answer.unwrap_or_else(|e| Err(RpcError::new(protocol::INTERNAL_ERROR, format!("the request failed: {e}"))));
                if first.is_empty() || !sse {
                    return json_answer(&request_id, &era, answer);
                }
                return sse_answer(first, rx, Some(answer), handler, request_id);
            }
            msg = rx.recv() => {
                // Without SSE the client hears nothing before the answer.
                if sse && let Some(m) = msg {
                    first.push(m);
                    return sse_answer(first, rx, None, handler, request_id);
                }
            }
            _ = &mut timer, if sse => return sse_answer(first, rx, None, handler, request_id),
        }
    }
}

fn json_answer(id: &Value, era: &Era, answer: Answer) -> Response {
    match answer {
        Ok(Some(result)) => axum::Json(protocol::response(id, result)).into_response(),
        // The client cancelled: it expects nothing.
        Ok(None) => StatusCode::ACCEPTED.into_response(),
        Err(e) => (
            error_status(era, &e),
            axum::Json(protocol::error_response(Some(id), &e)),
        )
            .into_response(),
    }
}

fn event(msg: &Value) -> Result<Event, Infallible> {
    Ok(Event::default().data(msg.to_string()))
}

/// Streams what the request sends, then its answer; dropping the stream (the client went
/// away) drops the request's outbound channel, which the handler notices.
fn sse_answer(
    first: Vec<Value>,
    mut rx: mpsc::UnboundedReceiver<Value>,
    done: Option<Answer>,
    mut handler: tokio::task::JoinHandle<Answer>,
    id: Value,
) -> Response {
    let (tx, stream_rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        for m in &first {
            if tx.send(event(m)).await.is_err() {
                return;
            }
        }
        let answer = match done {
            Some(a) => Some(a),
            None => loop {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(m) => if tx.send(event(&m)).await.is_err() { return },
                        None => break (&mut handler).await.ok(),
                    },
                    a = &mut handler => {
                        // Whatever the handler sent before answering goes first.
                        while let Ok(m) = rx.try_recv() {
                            if tx.send(event(&m)).await.is_err() { return }
                        }
                        break Some(a.unwrap_or_else(|e| Err(RpcError::new(protocol::INTERNAL_ERROR, format!("the request failed: {e}")))));
                    }
                    _ = tx.closed() => return,
                }
            },
        };
        let final_msg = match answer {
            Some(Ok(Some(result))) => Some(protocol::response(&id, result)),
            Some(Err(e)) => Some(protocol::error_response(Some(&id), &e)),
            _ => None,
        };
        if let Some(m) = final_msg {
            let _ = tx.send(event(&m)).await;
        }
    });
    let mut r = Sse::new(ReceiverStream::new(stream_rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

// ---- GET / DELETE (legacy sessions) -------------------------------------------------------

fn legacy_session(
    service: &McpService,
    headers: &HeaderMap,
    principal: &str,
) -> Option<(String, Era)> {
    let sid = headers.get(SESSION_HEADER)?.to_str().ok()?.to_string();
    if service.sessions.is_ended(&sid) {
        return None;
    }
    let era = session::decode_session_id(service.session_key(), &sid, principal)?;
    Some((sid, era))
}

/// The notification stream of a legacy session: task status changes of the session's
/// tasks and tool list changes.
fn open_stream(service: Arc<McpService>, headers: &HeaderMap, identity: Identity) -> Response {
    if headers.get(SESSION_HEADER).is_some()
        && legacy_session(&service, headers, &identity.principal).is_none()
    {
        return rpc_error_response(
            StatusCode::NOT_FOUND,
            None,
            &RpcError::new(
                protocol::INVALID_REQUEST,
                "unknown session: initialize a new one",
            ),
        );
    }
    let Some((sid, era)) = legacy_session(&service, headers, &identity.principal) else {
        return method_not_allowed();
    };
    let session = service.sessions.get(&sid);
    let (out, mut rx) = mpsc::unbounded_channel::<Value>();
    session.set_stream(Some(out.clone()));
    if era.legacy_tasks() {
        tokio::spawn(crate::tasks::push_status(
            service.clone(),
            session.clone(),
            identity.principal.clone(),
            out.clone(),
        ));
    }
    let (tx, stream_rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => if tx.send(event(&m)).await.is_err() { break },
                    None => break,
                },
                _ = tx.closed() => break,
            }
        }
        // Only clear the session's stream if it is still this one.
        drop(rx);
        drop(out);
        session.clear_closed_stream();
    });
    let mut r = Sse::new(ReceiverStream::new(stream_rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

async fn end_session(service: &Arc<McpService>, headers: &HeaderMap, principal: &str) -> Response {
    match legacy_session(service, headers, principal) {
        Some((sid, _)) => {
            let session = service.sessions.get(&sid);
            service.sessions.end(&sid);
            // Every node refuses it from now on (they read the store every second).
            if let Err(e) = service
                .engine
                .end_client_session(&session::ended_key(&sid))
                .await
            {
                tracing::warn!(error = %e, "could not record an ended session for the other nodes");
            }
            // The resources it watched are let go of (the last watcher tells the server).
            let service = service.clone();
            tokio::spawn(
                async move { crate::relay::forget_subscriptions(&service, &session).await },
            );
            StatusCode::NO_CONTENT.into_response()
        }
        None if headers.get(SESSION_HEADER).is_some() => rpc_error_response(
            StatusCode::NOT_FOUND,
            None,
            &RpcError::new(protocol::INVALID_REQUEST, "unknown session"),
        ),
        None => method_not_allowed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_header_values_are_decoded() {
        let v = HeaderValue::from_static("=?base64?w6lsw6h2ZQ==?=");
        assert_eq!(header_text(&v).unwrap(), "élève");
        assert_eq!(
            header_text(&HeaderValue::from_static("plain")).unwrap(),
            "plain"
        );
    }
}
