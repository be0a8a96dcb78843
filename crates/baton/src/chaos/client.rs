//! A workload client: the HTTP client, the nodes, the history recorder and what the
//! clients know of their tasks; every request it sends goes into the history with its
//! answer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use reqwest::Method;
use serde_json::{Value, json};

use super::history::{Expect, Op, OpKind, Outcome, Recorder, abbreviate};

/// A request body.
pub enum Body {
    None,
    Json(Value),
    /// Sent as is, with this content type.
    Raw(String, &'static str),
}

/// What the clients know of the tasks and workflows they made.
#[derive(Default)]
pub(super) struct Known {
    pub(super) tasks: Vec<String>,
    /// Tasks likely to end failed or cancelled: candidates for a hand retry.
    pub(super) retryable: Vec<String>,
    pub(super) workflows: Vec<String>,
}

pub struct Workload {
    http: reqwest::Client,
    /// `(name, URL)` of the API nodes.
    nodes: Vec<(String, String)>,
    rec: Arc<Recorder>,
    pub(super) known: Mutex<Known>,
    pub(super) seed: u64,
}

pub(super) const KEEP_KNOWN: usize = 400;

impl Workload {
    pub fn new(nodes: Vec<(String, String)>, rec: Arc<Recorder>, seed: u64) -> Arc<Workload> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(64)
            .build()
            .expect("HTTP client");
        Arc::new(Workload {
            http,
            nodes,
            rec,
            known: Mutex::new(Known::default()),
            seed,
        })
    }

    fn remember(&self, op: &Op, retryable: bool) {
        let mut k = self.known.lock().expect("known");
        for t in &op.tasks {
            if !k.tasks.contains(t) {
                k.tasks.push(t.clone());
            }
            if retryable {
                k.retryable.push(t.clone());
            }
        }
        if let Some(w) = &op.workflow
            && !k.workflows.contains(w)
        {
            k.workflows.push(w.clone());
        }
        let k = &mut *k;
        for list in [&mut k.tasks, &mut k.retryable, &mut k.workflows] {
            if list.len() > KEEP_KNOWN {
                list.drain(..list.len() - KEEP_KNOWN);
            }
        }
    }
}

/// One client's step: its workload, number, random source and operation count.
pub struct Client<'a> {
    pub(super) w: &'a Workload,
    pub(super) c: usize,
    pub rng: &'a mut StdRng,
    pub n: u64,
}

impl Client<'_> {
    pub fn node(&mut self) -> usize {
        self.rng.random_range(0..self.w.nodes.len())
    }

    /// Sends one request, records it, and returns it (with the tasks and workflow its
    /// answer names).
    pub async fn send(
        &mut self,
        kind: OpKind,
        method: Method,
        path: &str,
        body: Body,
        headers: &[(&str, String)],
        expect: Expect,
    ) -> Op {
        let node = self.node();
        let (name, base) = self.w.nodes[node].clone();
        let mut req = self.w.http.request(method.clone(), format!("{base}{path}"));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let request = match &body {
            Body::None => Value::Null,
            Body::Json(v) => abbreviate(v),
            Body::Raw(s, _) => abbreviate(&Value::String(s.clone())),
        };
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw(s, ct) => req.header("content-type", ct).body(s),
        };
        let id = self.w.rec.next_id();
        let invoked_ms = self.w.rec.now_ms();
        let (outcome, status, answer) = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(bytes) => {
                        let answer = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&bytes).into_owned())
                        });
                        let outcome = match status {
                            200..=299 => Outcome::Ok,
                            400..=499 => Outcome::Fail,
                            _ => Outcome::Info,
                        };
                        (outcome, Some(status), answer)
                    }
                    Err(e) => (
                        Outcome::Info,
                        Some(status),
                        json!({"error": format!("reading the body: {e}")}),
                    ),
                }
            }
            // Refused: the request never reached a node.
            Err(e) if e.is_connect() => (Outcome::Fail, None, json!({"error": chain(&e)})),
            Err(e) => (Outcome::Info, None, json!({"error": chain(&e)})),
        };
        let mut op = Op {
            id,
            client: self.c,
            kind,
            node: name,
            method: method.to_string(),
            path: path.chars().take(300).collect(),
            request,
            invoked_ms,
            completed_ms: self.w.rec.now_ms(),
            outcome,
            status,
            answer: Value::Null,
            tasks: Vec::new(),
            workflow: None,
            expect,
        };
        if outcome == Outcome::Ok {
            op.tasks = task_ids(&answer);
            op.workflow = answer
                .get("workflow_id")
                .and_then(Value::as_str)
                .map(String::from);
        }
        op.answer = abbreviate(&answer);
        self.w.rec.push(op.clone());
        op
    }

    /// A POST with a JSON body (`null`: none).
    pub async fn post(&mut self, kind: OpKind, path: &str, body: Value) -> Op {
        let body = if body.is_null() {
            Body::None
        } else {
            Body::Json(body)
        };
        self.send(kind, Method::POST, path, body, &[], Expect::Nothing)
            .await
    }

    pub async fn get(&mut self, path: &str) -> Op {
        self.send(
            OpKind::Read,
            Method::GET,
            path,
            Body::None,
            &[],
            Expect::Nothing,
        )
        .await
    }

    pub fn remember(&self, op: &Op, retryable: bool) {
        self.w.remember(op, retryable);
    }
}

/// The tasks an answer names: `task_id`, the `tasks` of a batch or list, the `steps` of a
/// workflow.
pub fn task_ids(answer: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    if let Some(t) = answer.get("task_id").and_then(Value::as_str) {
        ids.push(t.to_string());
    }
    for list in ["tasks", "steps"] {
        for item in answer
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = item.get("task_id").and_then(Value::as_str) {
                ids.push(t.to_string());
            }
        }
    }
    ids
}

/// An error with its causes ("error sending request: … : connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
