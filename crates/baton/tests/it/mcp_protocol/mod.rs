//! `/mcp` at the wire: the error codes and HTTP statuses the specifications name for bad
//! input, ownership of tasks, DNS rebinding protection, waiting calls (keep-alives,
//! disconnects, cancellation), task subscriptions, and pass-through of rich upstream
//! results. Real node, real port, real upstreams; requests written out by hand because
//! the point is what goes over the wire.

mod requests;
mod results;

use std::path::Path;
use std::time::Duration;

use crate::common::{Baton, everything_bin, testserver_bin};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);
const V2026: &str = "2026-07-28";

fn start(dir: &Path, everything: bool, env: &[(&str, &str)]) -> Baton {
    let mut toml = format!(
        "[[servers]]\nname = \"ts\"\ncommand = \"{}\"\nargs = [\"--state-dir\", \"{}\"]\n",
        testserver_bin().display(),
        dir.join("ts-state").display()
    );
    if everything {
        toml.push_str(&format!(
            "\n[[servers]]\nname = \"everything\"\ncommand = \"{}\"\nargs = [\"stdio\"]\n",
            everything_bin().display()
        ));
    }
    let config = dir.join("baton.toml");
    std::fs::write(&config, toml).unwrap();
    let config = config.to_string_lossy().to_string();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("BATON_CONFIG", &config));
    Baton::start(&dir.join("data"), &env)
}

/// What came back: the status, headers and every JSON-RPC message (one for a JSON
/// answer, the whole stream for SSE).
pub(crate) struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    messages: Vec<Value>,
}

impl Answer {
    /// The final message (the response).
    pub(crate) fn last(&self) -> &Value {
        self.messages.last().expect("an answer")
    }

    fn error_code(&self) -> i64 {
        self.last()["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("expected an error: {:?}", self.messages))
    }

    fn error_message(&self) -> &str {
        self.last()["error"]["message"].as_str().unwrap()
    }
}

fn sse_data(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|block| {
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).unwrap())
        })
        .collect()
}

/// A hand-driven MCP client.
pub(crate) struct Mcp {
    http: reqwest::Client,
    url: String,
}

impl Mcp {
    pub(crate) fn new(base: &str) -> Mcp {
        Mcp {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            url: format!("{base}/mcp"),
        }
    }

    fn post(&self) -> reqwest::RequestBuilder {
        self.http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let sse = headers
            .get("content-type")
            .is_some_and(|c| c.to_str().unwrap().starts_with("text/event-stream"));
        let text = resp.text().await.unwrap();
        let messages = if sse {
            sse_data(&text)
        } else if text.is_empty() {
            Vec::new()
        } else {
            vec![serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))]
        };
        Answer {
            status,
            headers,
            messages,
        }
    }

    /// Begins a legacy session; returns its id.
    pub(crate) async fn initialize(&self, version: &str, capabilities: Value) -> String {
        let a = self
            .send(self.post().json(&json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": version, "capabilities": capabilities,
                           "clientInfo": {"name": "wire", "version": "1"}}
            })))
            .await;
        assert_eq!(a.status, 200);
        assert_eq!(a.last()["result"]["protocolVersion"], version);
        a.headers["mcp-session-id"].to_str().unwrap().to_string()
    }

    pub(crate) async fn legacy(
        &self,
        session: &str,
        id: u64,
        method: &str,
        params: Value,
    ) -> Answer {
        self.send(
            self.post()
                .header("mcp-session-id", session)
                .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})),
        )
        .await
    }

    /// `tools/call` of `name` in `session`: the call's `result`.
    pub(crate) async fn call_tool(&self, session: &str, id: u64, name: &str, args: Value) -> Value {
        self.legacy(
            session,
            id,
            "tools/call",
            json!({"name": name, "arguments": args}),
        )
        .await
        .last()["result"]
            .clone()
    }

    /// A 2026-07-28 request with matching headers; `tasks`: declare the extension.
    fn modern_request(
        &self,
        id: u64,
        method: &str,
        mut params: Value,
        tasks: bool,
    ) -> reqwest::RequestBuilder {
        let caps = if tasks {
            json!({"extensions": {"io.modelcontextprotocol/tasks": {}}, "elicitation": {}})
        } else {
            json!({})
        };
        if !params["_meta"].is_object() {
            params["_meta"] = json!({});
        }
        params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!(V2026);
        params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = caps;
        let mut req = self
            .post()
            .header("mcp-protocol-version", V2026)
            .header("mcp-method", method);
        let name = params
            .get("name")
            .or_else(|| params.get("taskId"))
            .and_then(Value::as_str);
        if let Some(n) = name {
            req = req.header("mcp-name", n);
        }
        req.json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
    }

    async fn modern(&self, id: u64, method: &str, params: Value, tasks: bool) -> Answer {
        self.send(self.modern_request(id, method, params, tasks))
            .await
    }
}
