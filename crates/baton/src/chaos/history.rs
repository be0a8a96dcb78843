//! The history: every request the workload made (invoked, then completed `ok`, `fail` or
//! `info`) and every fault injected, with times in milliseconds since the run began.
//! Written as JSON Lines (`history.jsonl`) when the run is kept.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What a request was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `POST /v1/tasks`.
    Submit,
    /// `POST /v1/tasks/batch`.
    Batch,
    /// The first submission with an idempotency key.
    IdemFirst,
    /// The same key and arguments again: must answer the first task.
    IdemReplay,
    /// The same key with other arguments: must be refused (409).
    IdemConflict,
    /// `DELETE /v1/tasks/{id}`.
    Cancel,
    /// `POST /v1/tasks/{id}/retry`.
    Retry,
    /// `POST /v1/workflows`.
    Workflow,
    /// `DELETE /v1/workflows/{id}`.
    WorkflowCancel,
    /// `POST /v1/workflows/{id}/retry`.
    WorkflowRetry,
    /// Reads: tasks, results, lists, workflows, stats.
    Read,
    /// Hostile input: NUL bytes, odd Unicode, huge strings, malformed bodies.
    Hostile,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Submit => "submit",
            OpKind::Batch => "batch",
            OpKind::IdemFirst => "idem-first",
            OpKind::IdemReplay => "idem-replay",
            OpKind::IdemConflict => "idem-conflict",
            OpKind::Cancel => "cancel",
            OpKind::Retry => "retry",
            OpKind::Workflow => "workflow",
            OpKind::WorkflowCancel => "workflow-cancel",
            OpKind::WorkflowRetry => "workflow-retry",
            OpKind::Read => "read",
            OpKind::Hostile => "hostile",
        }
    }
}

/// How a request ended, as Jepsen names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A 2xx answer.
    Ok,
    /// A definite refusal: a 4xx, or a connection that was never made.
    Fail,
    /// Indeterminate: a timeout, a reset connection, a 5xx.
    Info,
}

/// What the answer must be, checked by invariant 7.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Expect {
    #[default]
    Nothing,
    /// An idempotent replay: a 2xx answer must name this task.
    SameTask { task: String },
    /// The same key with other arguments: the answer must be a 409.
    Conflict { task: Option<String> },
}

/// One request and its answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Op {
    pub id: u64,
    pub client: usize,
    pub kind: OpKind,
    /// The node it was sent to (`node-1`, …).
    pub node: String,
    pub method: String,
    pub path: String,
    /// The body sent, with long strings shortened.
    pub request: Value,
    pub invoked_ms: u64,
    pub completed_ms: u64,
    pub outcome: Outcome,
    pub status: Option<u16>,
    /// The body received (long strings shortened), or the transport error.
    pub answer: Value,
    /// Tasks this answer acknowledged (or showed to exist).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
    /// The workflow this answer acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default)]
    pub expect: Expect,
}

impl Op {
    /// The answer's `status` field (e.g. of a cancellation).
    pub fn answer_status(&self) -> Option<&str> {
        self.answer.get("status").and_then(Value::as_str)
    }
}

/// What was done to the processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `kill -9`, then a restart with the same data directory and node id.
    Kill,
    /// SIGSTOP for longer than a lease, then SIGCONT.
    Pause,
    /// `pg_ctl restart` of the private PostgreSQL server.
    PgRestart,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill -9 + restart",
            FaultKind::Pause => "SIGSTOP > lease + SIGCONT",
            FaultKind::PgRestart => "PostgreSQL restart",
        }
    }
}

/// One fault, from its injection to its healing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    pub target: String,
    pub detail: String,
    pub start_ms: u64,
    /// When it was healed (the process restarted and ready, continued, PostgreSQL up).
    pub end_ms: u64,
    /// How long after healing its effects may still be felt (reconnections, rescues).
    pub recovery_ms: u64,
    /// The nodes whose answers it may disturb (`*`: all of them).
    pub affects: Vec<String>,
}

impl Fault {
    /// Whether a request to `node` between `from_ms` and `to_ms` may have felt it.
    pub fn disturbs(&self, node: &str, from_ms: u64, to_ms: u64) -> bool {
        self.affects.iter().any(|a| a == "*" || a == node)
            && from_ms <= self.end_ms + self.recovery_ms
            && to_ms >= self.start_ms
    }
}

/// Collects the history while the run goes on; shared by clients and the injector.
pub struct Recorder {
    start: Instant,
    next_id: AtomicU64,
    ops: Mutex<Vec<Op>>,
    faults: Mutex<Vec<Fault>>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            next_id: AtomicU64::new(0),
            ops: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn push(&self, op: Op) {
        self.ops.lock().expect("history").push(op);
    }

    pub fn fault(&self, fault: Fault) {
        self.faults.lock().expect("history").push(fault);
    }

    /// Operations so far, by outcome, and faults so far, by kind (for progress lines).
    pub fn counts(&self) -> (usize, BTreeMap<Outcome, usize>, BTreeMap<FaultKind, usize>) {
        let ops = self.ops.lock().expect("history");
        let mut by = BTreeMap::new();
        for op in ops.iter() {
            *by.entry(op.outcome).or_insert(0) += 1;
        }
        let mut faults = BTreeMap::new();
        for f in self.faults.lock().expect("history").iter() {
            *faults.entry(f.kind).or_insert(0) += 1;
        }
        (ops.len(), by, faults)
    }

    pub fn take(&self) -> (Vec<Op>, Vec<Fault>) {
        let mut ops = std::mem::take(&mut *self.ops.lock().expect("history"));
        ops.sort_by_key(|o| (o.invoked_ms, o.id));
        let faults = std::mem::take(&mut *self.faults.lock().expect("history"));
        (ops, faults)
    }
}

/// Writes the history as JSON Lines: an `invoke` line and a completion line (`ok`,
/// `fail`, `info`) per operation, `fault-start`/`fault-end` lines per fault, in time order.
pub fn write_jsonl(path: &Path, ops: &[Op], faults: &[Fault]) -> std::io::Result<()> {
    let mut lines: Vec<(u64, u64, Value)> = Vec::with_capacity(ops.len() * 2 + faults.len() * 2);
    for op in ops {
        lines.push((
            op.invoked_ms,
            op.id * 2,
            json!({"type": "invoke", "op": op.id, "time_ms": op.invoked_ms, "client": op.client,
                   "f": op.kind, "node": op.node, "method": op.method, "path": op.path,
                   "value": op.request}),
        ));
        let mut done = serde_json::to_value(op).unwrap_or_default();
        if let Some(o) = done.as_object_mut() {
            o.insert("type".into(), json!(op.outcome));
            o.insert("op".into(), json!(op.id));
            o.insert("time_ms".into(), json!(op.completed_ms));
            o.remove("request");
            o.remove("id");
        }
        lines.push((op.completed_ms, op.id * 2 + 1, done));
    }
    for (i, f) in faults.iter().enumerate() {
        let i = i as u64;
        lines.push((
            f.start_ms,
            u64::MAX / 2 + i * 2,
            json!({"type": "fault-start", "time_ms": f.start_ms, "fault": f.kind, "target": f.target, "detail": f.detail}),
        ));
        lines.push((
            f.end_ms,
            u64::MAX / 2 + i * 2 + 1,
            json!({"type": "fault-end", "time_ms": f.end_ms, "fault": f.kind, "target": f.target}),
        ));
    }
    lines.sort_by_key(|(t, order, _)| (*t, *order));
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (_, _, line) in lines {
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// A copy of `v` with strings longer than 300 characters shortened (the history keeps
/// what was sent and answered, not megabytes of it).
pub fn abbreviate(v: &Value) -> Value {
    match v {
        Value::String(s) if s.chars().count() > 300 => {
            let head: String = s.chars().take(120).collect();
            Value::String(format!("{head}… ({} chars)", s.chars().count()))
        }
        Value::Array(items) => Value::Array(items.iter().map(abbreviate).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let k = if k.chars().count() > 300 {
                        format!(
                            "{}… ({} chars)",
                            k.chars().take(120).collect::<String>(),
                            k.chars().count()
                        )
                    } else {
                        k.clone()
                    };
                    (k, abbreviate(v))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}
