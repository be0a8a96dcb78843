//! Who is asking, in which protocol era, and the channel back to them.
//!
//! A legacy session (begun with `initialize`) is identified by a session id that *is* its
//! state: the negotiated version and the client's capabilities, encoded, plus randomness.
//! Any Baton node can therefore serve any session — replicas need no affinity. What a node
//! keeps in memory for a session (requests it sent to the client and awaits, calls in
//! flight that a `notifications/cancelled` can reach, the open notification stream) is
//! only what cannot outlive a connection anyway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::protocol::{self, RpcError, TASKS_EXTENSION};

/// The protocol era of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Era {
    /// Inside a session begun with `initialize` (2025-11-25 and older).
    Legacy {
        version: String,
        capabilities: Value,
    },
    /// A self-describing 2026-07-28 request.
    Modern {
        version: String,
        capabilities: Value,
    },
}

impl Era {
    pub fn version(&self) -> &str {
        match self {
            Era::Legacy { version, .. } | Era::Modern { version, .. } => version,
        }
    }

    pub fn capabilities(&self) -> &Value {
        match self {
            Era::Legacy { capabilities, .. } | Era::Modern { capabilities, .. } => capabilities,
        }
    }

    pub fn is_modern(&self) -> bool {
        matches!(self, Era::Modern { .. })
    }

    /// 2025-11-25 experimental tasks are available in this session.
    pub fn legacy_tasks(&self) -> bool {
        matches!(self, Era::Legacy { version, .. } if version == protocol::V_2025_11)
    }

    /// The client declared the 2026-07-28 tasks extension on this request.
    pub fn ext_tasks(&self) -> bool {
        self.is_modern()
            && self
                .capabilities()
                .pointer("/extensions")
                .and_then(|e| e.get(TASKS_EXTENSION))
                .is_some()
    }

    pub fn elicitation(&self) -> bool {
        self.capabilities().get("elicitation").is_some()
    }
}

/// Encodes a legacy session into its id.
pub fn session_id(version: &str, capabilities: &Value) -> String {
    let state = json!({"v": version, "c": capabilities}).to_string();
    format!(
        "b1.{}.{:016x}",
        URL_SAFE_NO_PAD.encode(state),
        rand::random::<u64>()
    )
}

/// The era a session id stands for; `None` when it is not one of Baton's.
pub fn decode_session_id(id: &str) -> Option<Era> {
    let mut parts = id.split('.');
    if parts.next()? != "b1" {
        return None;
    }
    let state: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
    let version = state.get("v")?.as_str()?.to_string();
    if !protocol::LEGACY.contains(&version.as_str()) {
        return None;
    }
    Some(Era::Legacy {
        version,
        capabilities: state.get("c").cloned().unwrap_or(json!({})),
    })
}

/// Messages to the client about one request (progress, logs, requests for input): an
/// SSE stream over HTTP, stdout over stdio.
pub type Outbound = mpsc::UnboundedSender<Value>;

/// A node's in-memory part of a session (or of the stdio connection).
#[derive(Default)]
pub struct Session {
    next_request: AtomicU64,
    /// Requests Baton sent to the client, awaiting its answer.
    pending: Mutex<HashMap<String, oneshot::Sender<Result<Value, Value>>>>,
    /// Requests of the client being handled, so `notifications/cancelled` can reach them.
    inflight: Mutex<HashMap<String, CancellationToken>>,
    /// The session's stream for messages not tied to a request (legacy GET stream, or
    /// stdout): task status notifications, tool list changes.
    stream: Mutex<Option<Outbound>>,
    /// Tasks this session created (their status changes are pushed to it).
    pub tasks: Mutex<std::collections::HashSet<baton_core::TaskId>>,
    /// `logging/setLevel`.
    pub log_level: Mutex<Option<String>>,
}

fn key(id: &Value) -> String {
    id.to_string()
}

impl Session {
    pub fn new() -> Arc<Session> {
        Arc::new(Session::default())
    }

    pub fn set_stream(&self, out: Option<Outbound>) {
        *self.stream.lock().unwrap_or_else(|e| e.into_inner()) = out;
    }

    /// Forgets the session's stream if its client has gone.
    pub fn clear_closed_stream(&self) {
        let mut stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        if stream.as_ref().is_some_and(|s| s.is_closed()) {
            *stream = None;
        }
    }

    /// Sends a message on the session's own stream; `false` if it has none open.
    pub fn notify(&self, msg: Value) -> bool {
        let stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        stream.as_ref().is_some_and(|s| s.send(msg).is_ok())
    }

    /// Sends a request to the client on `out` and waits for its answer.
    pub async fn ask(
        &self,
        out: &Outbound,
        method: &str,
        params: Value,
    ) -> Result<Value, RpcError> {
        let id = json!(format!(
            "baton-{}",
            self.next_request.fetch_add(1, Ordering::Relaxed)
        ));
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key(&id), tx);
        if out.send(protocol::request(&id, method, params)).is_err() {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key(&id));
            return Err(RpcError::new(
                protocol::INTERNAL_ERROR,
                "the client is gone",
            ));
        }
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RpcError::new(
                protocol::INTERNAL_ERROR,
                format!("the client answered {method} with an error: {e}"),
            )),
            Err(_) => Err(RpcError::new(
                protocol::INTERNAL_ERROR,
                "the client is gone",
            )),
        }
    }

    /// An answer of the client to one of Baton's requests.
    pub fn deliver(&self, id: &Value, result: Result<Value, Value>) -> bool {
        let tx = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(id));
        tx.is_some_and(|tx| tx.send(result).is_ok())
    }

    /// Tracks a client request; the token fires if the client cancels it.
    pub fn begin(&self, id: &Value) -> CancellationToken {
        let token = CancellationToken::new();
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key(id), token.clone());
        token
    }

    pub fn end(&self, id: &Value) {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(id));
    }

    /// `notifications/cancelled`: `true` if a request in flight was found.
    pub fn cancel(&self, id: &Value) -> bool {
        let t = self
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key(id));
        t.map(|t| t.cancel()).is_some()
    }
}

/// Sessions of a node, by id (HTTP).
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    /// The node-local part of a session, created on first use (the id carries the rest).
    pub fn get(&self, id: &str) -> Arc<Session> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        map.entry(id.to_string()).or_default().clone()
    }

    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// Everything a request handler needs to know and may use.
pub struct Ctx {
    /// The JSON-RPC id of the request being handled.
    pub request_id: Value,
    pub era: Era,
    pub principal: String,
    /// Messages about this request go here.
    pub out: Outbound,
    pub session: Arc<Session>,
    /// Fires when the client cancels the request (or, on 2026-07-28 HTTP, disconnects).
    pub cancel: CancellationToken,
    /// Over 2026-07-28 HTTP, closing the response stream is the client's cancellation.
    pub disconnect_cancels: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_carry_their_state() {
        let id = session_id("2025-11-25", &json!({"elicitation": {}}));
        let era = decode_session_id(&id).unwrap();
        assert!(era.legacy_tasks() && era.elicitation());
        assert!(decode_session_id("nonsense").is_none());
        assert!(decode_session_id(&id.replace("b1.", "b2.")).is_none());
        assert_ne!(
            id,
            session_id("2025-11-25", &json!({"elicitation": {}})),
            "random part"
        );
    }
}
