//! The raw protocol where the SDK's typed model is lossy.
//!
//! rmcp models the 2026-07-28 tasks extension, but drops 2025-11-25 task metadata
//! (`execution.taskSupport` on tools, `capabilities.tasks` of the server) and may simplify
//! elicitation schemas. Baton needs those exactly: to know which tools must run as upstream
//! tasks, and to hand the client the same elicitation the server asked. For stdio servers
//! the raw lines are observed on their way to the SDK ([`crate::process::tee_lines`]); for
//! HTTP servers on a legacy protocol a short raw session reads the same metadata
//! ([`probe_http`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

#[derive(Default)]
pub struct RawCapture {
    state: Mutex<RawState>,
}

#[derive(Default)]
struct RawState {
    capabilities: Option<Value>,
    tools: HashMap<String, Value>,
    /// Server-to-client requests by JSON-RPC id (e.g. `elicitation/create`).
    requests: HashMap<String, Value>,
    /// Recent tool results by JSON-RPC id, exactly as sent (the typed model re-spells
    /// numbers and drops fields it does not know); oldest first, bounded.
    results: std::collections::VecDeque<(String, Value)>,
    /// Whether lines are observed (stdio): then `logs` holds the server's log messages in
    /// the order it sent them.
    tapped: bool,
    /// `notifications/message` params not yet relayed, oldest first, bounded. The SDK
    /// runs each notification's handler as a task of its own, so handlers may run out of
    /// order; whichever runs first relays everything queued, in order.
    logs: std::collections::VecDeque<Value>,
}

/// Log messages kept for relaying; more are dropped (oldest first).
const KEPT_LOGS: usize = 1024;

/// Tool results kept for their callers to pick up; callers take theirs at once, so a
/// handful suffices even with many calls in flight.
const KEPT_RESULTS: usize = 512;

impl RawCapture {
    /// Looks at one JSON-RPC line from the server.
    pub fn observe_line(&self, line: &str) {
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.tapped = true;
        }
        let interesting = line.contains("notifications/message")
            || line.contains("\"tools\"")
            || line.contains("\"capabilities\"")
            || line.contains("elicitation/create")
            || line.contains("sampling/createMessage")
            || line.contains("\"content\"");
        if !interesting {
            return;
        }
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            return;
        };
        self.observe(&msg);
    }

    pub fn observe(&self, msg: &Value) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if msg.get("method").and_then(Value::as_str) == Some("notifications/message") {
            if let Some(params) = msg.get("params") {
                if st.logs.len() >= KEPT_LOGS {
                    st.logs.pop_front();
                }
                st.logs.push_back(params.clone());
            }
            return;
        }
        // Requests to relay as the server sent them (the SDK's model rounds numbers, drops
        // fields it does not know).
        if matches!(
            msg.get("method").and_then(Value::as_str),
            Some("elicitation/create" | "sampling/createMessage")
        ) {
            if let (Some(id), Some(params)) = (msg.get("id"), msg.get("params")) {
                st.requests.insert(id_key(id), params.clone());
            }
            return;
        }
        let Some(result) = msg.get("result") else {
            return;
        };
        if result.get("content").is_some()
            && let Some(id) = msg.get("id")
        {
            if st.results.len() >= KEPT_RESULTS {
                st.results.pop_front();
            }
            st.results.push_back((id_key(id), result.clone()));
            return;
        }
        if result.get("protocolVersion").is_some()
            && let Some(caps) = result.get("capabilities")
        {
            st.capabilities = Some(caps.clone());
        }
        if let Some(tools) = result.get("tools").and_then(Value::as_array) {
            for t in tools {
                if let Some(name) = t.get("name").and_then(Value::as_str) {
                    st.tools.insert(name.to_string(), t.clone());
                }
            }
        }
    }

    /// Whether the server accepts 2025-11-25 task-augmented `tools/call`.
    pub fn legacy_tasks(&self) -> bool {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.capabilities
            .as_ref()
            .and_then(|c| c.pointer("/tasks/requests/tools/call"))
            .is_some()
    }

    pub fn tool(&self, name: &str) -> Option<Value> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.tools.get(name).cloned()
    }

    /// Forgets the tool list before a refresh, so that removed tools disappear.
    pub fn clear_tools(&self) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tools
            .clear();
    }

    /// The tool result answering request `id`, exactly as the server sent it (stdio
    /// servers only).
    pub fn take_result(&self, id: &Value) -> Option<Value> {
        let key = id_key(id);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let at = st.results.iter().position(|(k, _)| *k == key)?;
        st.results.remove(at).map(|(_, v)| v)
    }

    /// The server's log messages not relayed yet, in the order it sent them; `None` when
    /// lines are not observed (HTTP servers: use the SDK's notification).
    pub fn take_logs(&self) -> Option<Vec<Value>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.tapped.then(|| st.logs.drain(..).collect())
    }

    pub fn take_request(&self, id: &Value) -> Option<Value> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requests
            .remove(&id_key(id))
    }
}

fn id_key(id: &Value) -> String {
    match id {
        Value::String(s) => format!("s:{s}"),
        other => format!("n:{other}"),
    }
}

/// `execution.taskSupport` of a raw tool definition (absent means forbidden).
pub fn task_support(tool: &Value) -> TaskSupport {
    match tool
        .pointer("/execution/taskSupport")
        .and_then(Value::as_str)
    {
        Some("required") => TaskSupport::Required,
        Some("optional") => TaskSupport::Optional,
        _ => TaskSupport::Forbidden,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSupport {
    Forbidden,
    Optional,
    Required,
}

/// A short raw session with a legacy Streamable HTTP server: `initialize`, every page of
/// `tools/list`, then `DELETE` of the session. Everything seen goes into `capture`.
pub async fn probe_http(
    url: &str,
    headers: &BTreeMap<String, String>,
    protocol_version: &str,
    capture: &RawCapture,
) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| e.to_string())?;
    let mut session: Option<String> = None;
    let post = |body: Value, session: Option<String>| {
        let mut req = http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", protocol_version)
            .json(&body);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.send()
    };
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": protocol_version,
            "capabilities": {"elicitation": {}},
            "clientInfo": {"name": "baton-probe", "version": env!("CARGO_PKG_VERSION")}
        }
    });
    let resp = post(init, None).await.map_err(|e| e.to_string())?;
    if let Some(s) = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        session = Some(s.to_string());
    }
    let body = resp.text().await.map_err(|e| e.to_string())?;
    let msg = find_response(&body, 1).ok_or("no answer to initialize")?;
    capture.observe(&msg);
    let _ = post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        session.clone(),
    )
    .await;
    let mut cursor: Option<String> = None;
    for id in 2..50 {
        let mut params = json!({});
        if let Some(c) = &cursor {
            params["cursor"] = json!(c);
        }
        let resp = post(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": params}),
            session.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let body = resp.text().await.map_err(|e| e.to_string())?;
        let msg = find_response(&body, id).ok_or("no answer to tools/list")?;
        capture.observe(&msg);
        cursor = msg
            .pointer("/result/nextCursor")
            .and_then(Value::as_str)
            .map(String::from);
        if cursor.is_none() {
            break;
        }
    }
    if let Some(s) = session {
        let mut req = http.delete(url).header("mcp-session-id", s);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let _ = req.send().await;
    }
    Ok(())
}

/// The JSON-RPC response with `id` in a plain JSON body or an SSE stream.
fn find_response(body: &str, id: i64) -> Option<Value> {
    let matches = |v: &Value| v.get("id").and_then(Value::as_i64) == Some(id);
    if let Ok(v) = serde_json::from_str::<Value>(body.trim()) {
        return matches(&v).then_some(v);
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_capabilities_tools_and_requests() {
        let c = RawCapture::default();
        c.observe_line(r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{"tasks":{"requests":{"tools":{"call":{}}}}}}}"#);
        c.observe_line(r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","execution":{"taskSupport":"required"}},{"name":"b"}]}}"#);
        c.observe_line(
            r#"{"jsonrpc":"2.0","id":7,"method":"elicitation/create","params":{"message":"pick"}}"#,
        );
        assert!(c.legacy_tasks());
        assert_eq!(task_support(&c.tool("a").unwrap()), TaskSupport::Required);
        assert_eq!(task_support(&c.tool("b").unwrap()), TaskSupport::Forbidden);
        assert_eq!(c.take_request(&json!(7)).unwrap()["message"], "pick");
        assert!(c.take_request(&json!(7)).is_none());
    }

    #[test]
    fn finds_responses_in_sse() {
        let body = "id: x\ndata: \n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n";
        assert!(find_response(body, 3).is_some());
        assert!(find_response(body, 4).is_none());
    }
}
