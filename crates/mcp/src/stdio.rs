//! MCP over stdio: newline-delimited JSON-RPC on stdin and stdout (`baton mcp`).
//!
//! [`serve`] answers in-process with an [`McpService`]; [`bridge`] relays every message to
//! the `/mcp` endpoint of a running Baton, so that a stdio-only host can use a shared
//! node. Either way stdout carries protocol messages only (logs go to stderr).
//!
//! Eras as on HTTP: `initialize` begins a legacy session for the connection; requests with
//! a 2026-07-28 `_meta` stand alone. `notifications/cancelled` cancels a request (and the
//! task a waiting call follows).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::protocol::negotiate;
use crate::protocol::{self, Incoming, RpcError};
use crate::session::{Ctx, Era, Session};
use crate::state::McpService;

/// Reads one line of at most `max` bytes. `Ok(None)`: end of input; `Err(true)` in the
/// result: the line was longer (and was skipped).
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<Result<(), ()>>> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() && !too_long {
                None
            } else if too_long {
                Some(Err(()))
            } else {
                Some(Ok(()))
            });
        }
        let (chunk, found) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = found.unwrap_or(available.len());
        r.consume(used);
        if found.is_some() {
            return Ok(Some(if too_long { Err(()) } else { Ok(()) }));
        }
    }
}

/// Writes each message as one line, in order.
fn writer<W: AsyncWrite + Unpin + Send + 'static>(
    mut w: W,
) -> (mpsc::UnboundedSender<Value>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let task = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let mut line = msg.to_string();
            line.push('\n');
            if w.write_all(line.as_bytes()).await.is_err() || w.flush().await.is_err() {
                break;
            }
        }
    });
    (tx, task)
}

/// Serves one client on `input`/`output` until its input ends.
pub async fn serve<R, W>(service: Arc<McpService>, principal: String, input: R, output: W)
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, writer_task) = writer(output);
    let session = Session::new();
    session.set_stream(Some(out.clone()));
    let stdio_id = format!("stdio-{:032x}", rand::random::<u128>());
    let mut era: Option<Era> = None;
    let mut input = input;
    let mut buf = Vec::new();
    let max = service.settings.max_message_bytes;
    loop {
        let line = match read_line(&mut input, &mut buf, max).await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read stdin");
                break;
            }
        };
        if line.is_err() {
            let e = RpcError::new(
                protocol::INVALID_REQUEST,
                format!("message too large: at most {max} bytes"),
            );
            let _ = out.send(protocol::error_response(None, &e));
            continue;
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if buf.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            batch(&service, &principal, era.as_ref(), &session, &out, &buf);
            continue;
        }
        let incoming = match protocol::parse(&buf) {
            Ok(m) => m,
            Err((id, e)) => {
                let _ = out.send(protocol::error_response(id.as_ref(), &e));
                continue;
            }
        };
        match incoming {
            Incoming::Notification { method, params } => {
                service.handle_notification(&method, &params, &session)
            }
            Incoming::Response { id, result } => {
                session.deliver(&id, result);
            }
            Incoming::Request { id, method, params } => {
                let request_era = if method == "initialize" {
                    let asked = params
                        .get("protocolVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let e = Era::Legacy {
                        version: negotiate(asked).to_string(),
                        capabilities: params
                            .get("capabilities")
                            .cloned()
                            .filter(Value::is_object)
                            .unwrap_or(json!({})),
                    };
                    if era.is_none() {
                        // From now on it hears what every session hears (list changes,
                        // resource updates).
                        service.sessions.insert(&stdio_id, session.clone());
                    }
                    if e.legacy_tasks() && era.is_none() {
                        tokio::spawn(crate::tasks::push_status(
                            service.clone(),
                            session.clone(),
                            principal.clone(),
                            out.clone(),
                        ));
                    }
                    era = Some(e.clone());
                    Ok(e)
                } else {
                    stdio_era(&params, era.as_ref(), &method)
                };
                let request_era = match request_era {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = out.send(protocol::error_response(Some(&id), &e));
                        continue;
                    }
                };
                let ctx = Ctx {
                    request_id: id.clone(),
                    era: request_era,
                    principal: principal.clone(),
                    identity: baton_core::auth::Identity::trusted(principal.clone()),
                    quota: Default::default(),
                    origin: baton_core::auth::RequestOrigin {
                        remote: Some("stdio".into()),
                        request_id: None,
                    },
                    out: out.clone(),
                    session: session.clone(),
                    cancel: session.begin(&id),
                    disconnect_cancels: false,
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let answer = service.handle_request(&method, params, &ctx).await;
                    ctx.session.end(&ctx.request_id);
                    let msg = match answer {
                        Ok(Some(result)) => Some(protocol::response(&ctx.request_id, result)),
                        Ok(None) => None,
                        Err(e) => Some(protocol::error_response(Some(&ctx.request_id), &e)),
                    };
                    if let Some(m) = msg {
                        let _ = ctx.out.send(m);
                    }
                });
            }
        }
    }
    session.set_stream(None);
    service.sessions.remove(&stdio_id);
    crate::relay::forget_subscriptions(&service, &session).await;
    drop(out);
    // Answers already on their way are written; the requests still waiting are abandoned
    // with their client (their tasks run on, durably).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer_task).await;
}

/// A JSON-RPC batch on a connection that negotiated 2025-03-26: answered with one array
/// line once every request in it is answered.
fn batch(
    service: &Arc<McpService>,
    principal: &str,
    era: Option<&Era>,
    session: &Arc<Session>,
    out: &mpsc::UnboundedSender<Value>,
    line: &[u8],
) {
    let refuse = |m: String| {
        let _ = out.send(protocol::error_response(
            None,
            &RpcError::new(protocol::INVALID_REQUEST, m),
        ));
    };
    let messages = match serde_json::from_slice::<Value>(line) {
        Ok(Value::Array(m)) if !m.is_empty() => m,
        Ok(_) => return refuse("an empty batch".into()),
        Err(e) => {
            let _ = out.send(protocol::error_response(
                None,
                &RpcError::new(protocol::PARSE_ERROR, format!("parse error: {e}")),
            ));
            return;
        }
    };
    let Some(era) = era
        .filter(|e| e.version() == crate::dispatch::BATCH_VERSION)
        .cloned()
    else {
        return refuse(format!(
            "JSON-RPC batches belong to protocol {} only: send one message per line",
            crate::dispatch::BATCH_VERSION
        ));
    };
    let (service, principal, session, out) = (
        service.clone(),
        principal.to_string(),
        session.clone(),
        out.clone(),
    );
    tokio::spawn(async move {
        let answers = service
            .handle_batch(messages, &session, |id| Ctx {
                request_id: id.clone(),
                era: era.clone(),
                principal: principal.clone(),
                identity: baton_core::auth::Identity::trusted(principal.clone()),
                quota: Default::default(),
                origin: baton_core::auth::RequestOrigin {
                    remote: Some("stdio".into()),
                    request_id: None,
                },
                out: out.clone(),
                session: session.clone(),
                cancel: session.begin(id),
                disconnect_cancels: false,
            })
            .await;
        if let Some(a) = answers {
            let _ = out.send(Value::Array(a));
        }
    });
}

fn stdio_era(params: &Value, connection: Option<&Era>, method: &str) -> Result<Era, RpcError> {
    if let Some(meta) = protocol::meta(params)
        && let Some(v) = meta.get(protocol::META_PROTOCOL_VERSION)
    {
        let version = v.as_str().unwrap_or_default();
        if version != protocol::V_2026 {
            return Err(RpcError::new(
                protocol::UNSUPPORTED_PROTOCOL_VERSION,
                format!("unsupported protocol version `{version}` in _meta"),
            )
            .with_data(json!({"supported": [protocol::V_2026], "requested": v})));
        }
        let Some(capabilities) = meta
            .get(protocol::META_CLIENT_CAPABILITIES)
            .filter(|c| c.is_object())
        else {
            return Err(RpcError::invalid_params(format!(
                "_meta[\"{}\"] (an object) is required on every {} request",
                protocol::META_CLIENT_CAPABILITIES,
                protocol::V_2026
            )));
        };
        return Ok(Era::Modern {
            version: version.to_string(),
            capabilities: capabilities.clone(),
        });
    }
    match connection {
        Some(e) => Ok(e.clone()),
        None if method == "ping" => Ok(Era::Legacy {
            version: protocol::V_2025_11.to_string(),
            capabilities: json!({}),
        }),
        None => Err(RpcError::invalid_params(format!(
            "send initialize first, or {} requests with _meta[\"{}\"] and _meta[\"{}\"]",
            protocol::V_2026,
            protocol::META_PROTOCOL_VERSION,
            protocol::META_CLIENT_CAPABILITIES
        ))),
    }
}

// ---- bridge ---------------------------------------------------------------------------

/// What the bridge knows of the session it relays.
#[derive(Default)]
struct BridgeState {
    session_id: Option<String>,
    version: Option<String>,
    /// Tool name → (argument, header) pairs of `x-mcp-header` annotations, from the
    /// `tools/list` answers that passed by.
    param_headers: HashMap<String, Vec<(String, String)>>,
    /// 2026-07-28 requests in flight: closing their stream is their cancellation.
    inflight: HashMap<String, tokio::task::AbortHandle>,
}

fn header_value(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.starts_with("=?base64?");
    if plain {
        s.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }
}

/// Relays stdin/stdout to the `/mcp` endpoint at `url` until stdin ends.
pub async fn bridge<R, W>(
    url: String,
    principal: Option<String>,
    token: Option<String>,
    ca_pem: Option<Vec<u8>>,
    input: R,
    output: W,
) -> Result<(), String>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let endpoint = format!("{}/mcp", url.trim_end_matches('/'));
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the token has characters a header cannot carry".to_string())?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    let mut builder = reqwest::Client::builder().default_headers(headers);
    // A private CA's certificate (or the node's own self-signed one) for an https:// node.
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("--ca-cert: not a PEM certificate: {e}"))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let (out, writer_task) = writer(output);
    let state = Arc::new(Mutex::new(BridgeState::default()));
    let mut input = input;
    let mut buf = Vec::new();
    loop {
        match read_line(&mut input, &mut buf, 64 * 1024 * 1024).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(()))) => continue,
            Ok(None) | Err(_) => break,
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let body = buf.clone();
        let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let id = msg.get("id").cloned();
        let method = msg.get("method").and_then(Value::as_str).map(String::from);
        // A cancelled 2026-07-28 request: close its stream instead of relaying.
        if method.as_deref() == Some("notifications/cancelled")
            && let Some(rid) = msg.pointer("/params/requestId")
            && let Some(h) = state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .inflight
                .remove(&rid.to_string())
        {
            h.abort();
            continue;
        }
        let modern = msg
            .pointer(&format!(
                "/params/_meta/{}",
                protocol::META_PROTOCOL_VERSION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .map(String::from);
        let request = build_request(
            &client,
            &endpoint,
            &state,
            &msg,
            principal.as_deref(),
            modern.as_deref(),
        );
        let out = out.clone();
        let st = state.clone();
        let client2 = client.clone();
        let endpoint2 = endpoint.clone();
        let principal2 = principal.clone();
        let is_initialize = method.as_deref() == Some("initialize");
        let task = tokio::spawn(async move {
            let result = relay(request.body(body), id.as_ref(), &out, &st).await;
            if let Err(e) = result {
                if let Some(id) = &id {
                    let _ = out.send(protocol::error_response(
                        Some(id),
                        &RpcError::new(protocol::INTERNAL_ERROR, e),
                    ));
                } else {
                    tracing::warn!("{e}");
                }
            } else if is_initialize {
                tokio::spawn(listen_session(client2, endpoint2, st, principal2, out));
            }
        });
        if modern.is_some()
            && let Some(id) = msg.get("id")
        {
            state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .inflight
                .insert(id.to_string(), task.abort_handle());
        }
    }
    drop(out);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer_task).await;
    Ok(())
}

fn build_request(
    client: &reqwest::Client,
    endpoint: &str,
    state: &Mutex<BridgeState>,
    msg: &Value,
    principal: Option<&str>,
    modern: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut r = client
        .post(endpoint)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(p) = principal {
        r = r.header(baton_core::principal::HEADER, p);
    }
    let st = state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(version) = modern {
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        r = r
            .header("mcp-protocol-version", version)
            .header("mcp-method", method);
        let name = match method {
            "tools/call" | "prompts/get" => msg.pointer("/params/name"),
            "resources/read" => msg.pointer("/params/uri"),
            "tasks/get" | "tasks/update" | "tasks/cancel" => msg.pointer("/params/taskId"),
            _ => None,
        };
        if let Some(n) = name.and_then(Value::as_str) {
            r = r.header("mcp-name", header_value(n));
        }
        if method == "tools/call"
            && let Some(tool) = msg.pointer("/params/name").and_then(Value::as_str)
            && let Some(pairs) = st.param_headers.get(tool)
        {
            for (arg, h) in pairs {
                let v = msg.pointer(&format!("/params/arguments/{arg}"));
                let text = match v {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Bool(b)) => Some(b.to_string()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                if let Some(t) = text {
                    r = r.header(format!("mcp-param-{h}"), header_value(&t));
                }
            }
        }
    } else {
        if let Some(sid) = &st.session_id {
            r = r.header("mcp-session-id", sid);
        }
        if let Some(v) = &st.version {
            r = r.header("mcp-protocol-version", v);
        }
    }
    r
}

/// Sends one message and writes what comes back (a JSON answer or an SSE stream).
async fn relay(
    request: reqwest::RequestBuilder,
    id: Option<&Value>,
    out: &mpsc::UnboundedSender<Value>,
    state: &Mutex<BridgeState>,
) -> Result<(), String> {
    let resp = request
        .send()
        .await
        .map_err(|e| format!("cannot reach Baton: {e}"))?;
    let status = resp.status();
    if let Some(sid) = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        state.lock().unwrap_or_else(|e| e.into_inner()).session_id = Some(sid.to_string());
    }
    let sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if sse {
        let mut events = sse_messages(resp);
        while let Some(m) = events.next().await {
            note(&m, state);
            let _ = out.send(m);
        }
        return Ok(());
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("reading Baton's answer: {e}"))?;
    if bytes.is_empty() {
        return Ok(());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(m) if m.get("jsonrpc").is_some() => {
            note(&m, state);
            let _ = out.send(m);
            Ok(())
        }
        _ if id.is_none() => Ok(()),
        _ => Err(format!(
            "Baton answered HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(300)
                .collect::<String>()
        )),
    }
}

/// Learns from answers passing by: the negotiated version, tools' header annotations.
fn note(m: &Value, state: &Mutex<BridgeState>) {
    let Some(result) = m.get("result") else {
        return;
    };
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = result.get("protocolVersion").and_then(Value::as_str)
        && result.get("serverInfo").is_some()
    {
        st.version = Some(v.to_string());
    }
    if let Some(tools) = result.get("tools").and_then(Value::as_array) {
        for t in tools {
            let Some(name) = t.get("name").and_then(Value::as_str) else {
                continue;
            };
            let pairs: Vec<(String, String)> = t
                .pointer("/inputSchema/properties")
                .and_then(Value::as_object)
                .map(|props| {
                    props
                        .iter()
                        .filter_map(|(k, s)| {
                            Some((
                                k.clone(),
                                s.get("x-mcp-header")?.as_str()?.to_ascii_lowercase(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !pairs.is_empty() {
                st.param_headers.insert(name.to_string(), pairs);
            }
        }
    }
}

/// The JSON messages of an SSE response.
fn sse_messages(resp: reqwest::Response) -> impl futures::Stream<Item = Value> + Unpin {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut bytes = resp.bytes_stream();
        let mut pending = Vec::<u8>::new();
        let mut data = String::new();
        while let Some(Ok(chunk)) = bytes.next().await {
            pending.extend_from_slice(&chunk);
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    if !data.is_empty() {
                        if let Ok(v) = serde_json::from_str::<Value>(&data)
                            && tx.send(v).is_err()
                        {
                            return;
                        }
                        data.clear();
                    }
                } else if let Some(d) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(d.strip_prefix(' ').unwrap_or(d));
                }
            }
        }
    });
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
}

/// A legacy session's notification stream (GET), relayed to stdout.
async fn listen_session(
    client: reqwest::Client,
    endpoint: String,
    state: Arc<Mutex<BridgeState>>,
    principal: Option<String>,
    out: mpsc::UnboundedSender<Value>,
) {
    let (sid, version) = {
        let st = state.lock().unwrap_or_else(|e| e.into_inner());
        (st.session_id.clone(), st.version.clone())
    };
    let Some(sid) = sid else { return };
    let mut r = client
        .get(&endpoint)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", sid);
    if let Some(v) = version {
        r = r.header("mcp-protocol-version", v);
    }
    if let Some(p) = principal {
        r = r.header(baton_core::principal::HEADER, p);
    }
    let Ok(resp) = r.send().await else { return };
    if !resp.status().is_success() {
        return;
    }
    let mut events = sse_messages(resp);
    while let Some(m) = events.next().await {
        if out.send(m).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_read_with_a_limit() {
        let data = b"short\nthis line is far too long\nok\nlast".to_vec();
        let mut r = tokio::io::BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 10).await.unwrap(), Some(Ok(())));
        assert_eq!(buf, b"short");
        assert_eq!(
            read_line(&mut r, &mut buf, 10).await.unwrap(),
            Some(Err(()))
        );
        assert_eq!(read_line(&mut r, &mut buf, 10).await.unwrap(), Some(Ok(())));
        assert_eq!(buf, b"ok");
        assert_eq!(read_line(&mut r, &mut buf, 10).await.unwrap(), Some(Ok(())));
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut r, &mut buf, 10).await.unwrap(), None);
    }

    #[test]
    fn header_values_that_need_it_are_encoded() {
        assert_eq!(header_value("plain-name"), "plain-name");
        assert_eq!(header_value("élève"), "=?base64?w6lsw6h2ZQ==?=");
        assert_eq!(header_value(" padded"), "=?base64?IHBhZGRlZA==?=");
    }
}
