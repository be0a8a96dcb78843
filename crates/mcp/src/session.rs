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
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
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

/// The key that signs session ids: one for every node sharing a store (so any node
/// serves any session), made once and kept in the store.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    pub fn new(bytes: [u8; 32]) -> SessionKey {
        SessionKey(bytes)
    }

    /// A key of this process only (tests, or a store that cannot keep one).
    pub fn random() -> SessionKey {
        SessionKey(rand::random())
    }

    fn mac(&self, body: &str) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(body.as_bytes());
        mac
    }

    fn sign(&self, body: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(body).finalize().into_bytes())
    }

    fn verify(&self, body: &str, signature: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(signature)
            .is_ok_and(|tag| self.mac(body).verify_slice(&tag).is_ok())
    }
}

/// Encodes a legacy session into its id: its state (version, the client's capabilities,
/// a tag of its principal), randomness, and a signature over both.
pub fn session_id(
    key: &SessionKey,
    version: &str,
    capabilities: &Value,
    principal: &str,
) -> String {
    let state = json!({"v": version, "c": capabilities, "p": owner_tag(principal)}).to_string();
    let body = format!(
        "b2.{}.{:032x}",
        URL_SAFE_NO_PAD.encode(state),
        rand::random::<u128>()
    );
    let signature = key.sign(&body);
    format!("{body}.{signature}")
}

/// What a session id records of its principal: enough to tell principals apart, not
/// the name itself.
fn owner_tag(principal: &str) -> String {
    baton_core::auth::hash_secret(&format!("baton-session:{principal}"))[..16].to_string()
}

/// The era a session id stands for; `None` when Baton did not issue it (its signature
/// does not hold), or issued it to another principal (a session id is useless to anyone
/// but its principal, whoever learns it).
pub fn decode_session_id(key: &SessionKey, id: &str, principal: &str) -> Option<Era> {
    let (body, signature) = id.rsplit_once('.')?;
    if !key.verify(body, signature) {
        return None;
    }
    let mut parts = body.split('.');
    if parts.next()? != "b2" {
        return None;
    }
    let state: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
    if state.get("p")?.as_str()? != owner_tag(principal) {
        return None;
    }
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
    /// Tasks this session created whose final status it has not been sent yet (their
    /// status changes are pushed to it; a task leaves once it ended).
    pub tasks: Mutex<std::collections::HashSet<baton_core::TaskId>>,
    /// When a request last used the session, for [`Sessions`] to forget idle ones.
    last_used: Mutex<Option<std::time::Instant>>,
    /// `logging/setLevel`.
    pub log_level: Mutex<Option<String>>,
    /// Resources (as the client names them) it subscribed to.
    pub subscriptions: Mutex<std::collections::HashSet<String>>,
}

fn key(id: &Value) -> String {
    id.to_string()
}

impl Session {
    pub fn new() -> Arc<Session> {
        Arc::new(Session::default())
    }

    /// Requests Baton sent to the client and still awaits (for tests: nothing leaks).
    pub fn pending_requests(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn touch(&self, now: std::time::Instant) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
    }

    fn idle_since(&self) -> Option<std::time::Instant> {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner())
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
        // Whichever way this ends (answered, the client gone, or this future dropped
        // because the call it serves was), the pending entry goes.
        struct Pending<'a>(&'a Session, String);
        impl Drop for Pending<'_> {
            fn drop(&mut self) {
                self.0
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&self.1);
            }
        }
        let _pending = Pending(self, key(&id));
        if out.send(protocol::request(&id, method, params)).is_err() {
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

/// How long a session's node-local part is kept without a request, an open stream or a
/// call in flight. Its id still works afterwards (it carries the session's state); only
/// what a node keeps for it (log level, status pushes of tasks not yet ended) is gone.
pub const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(600);
/// How often the sessions map is swept.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Sessions of a node, by id (HTTP).
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    last_sweep: Mutex<Option<std::time::Instant>>,
    /// Sessions their clients ended (`DELETE`): their ids are refused from then on.
    ended: Mutex<HashMap<String, std::time::Instant>>,
}

/// How an ended session is known across a deployment: a hash of its id.
pub fn ended_key(id: &str) -> String {
    baton_core::auth::hash_secret(&format!("baton-ended-session:{id}"))
}

/// How long an ended session's id is remembered, and how many at most.
pub(crate) const ENDED_KEPT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const ENDED_MAX: usize = 100_000;

impl Sessions {
    /// The node-local part of a session, created on first use (the id carries the rest).
    pub fn get(&self, id: &str) -> Arc<Session> {
        let now = std::time::Instant::now();
        let due = {
            let mut last = self.last_sweep.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY);
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            self.sweep(now, SESSION_IDLE);
        }
        let session = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone();
        session.touch(now);
        session
    }

    /// Forgets sessions nobody holds (no request in flight, no open stream) that were not
    /// used for `idle`.
    pub fn sweep(&self, now: std::time::Instant, idle: std::time::Duration) -> usize {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let before = map.len();
        map.retain(|_, s| {
            Arc::strong_count(s) > 1
                || s.idle_since()
                    .is_some_and(|t| now.saturating_duration_since(t) < idle)
        });
        before - map.len()
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps `session` under `id` (the stdio connection's session, so that what goes to
    /// every session reaches it too).
    pub fn insert(&self, id: &str, session: Arc<Session>) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), session);
    }

    /// Ends a session for good: its id is refused from now on.
    pub fn end(&self, id: &str) {
        self.remove(id);
        self.mark_ended(&ended_key(id));
    }

    /// Records that the session whose id hashes to `hash` ended (here or on another
    /// node).
    pub fn mark_ended(&self, hash: &str) {
        let now = std::time::Instant::now();
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if ended.len() >= ENDED_MAX {
            ended.retain(|_, at| now.saturating_duration_since(*at) < ENDED_KEPT);
            if ended.len() >= ENDED_MAX
                && let Some(oldest) = ended
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| k.clone())
            {
                ended.remove(&oldest);
            }
        }
        ended.entry(hash.to_string()).or_insert(now);
    }

    /// Whether the session was ended.
    pub fn is_ended(&self, id: &str) -> bool {
        self.ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ended_key(id))
            .is_some_and(|at| at.elapsed() < ENDED_KEPT)
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

impl Ctx {
    /// Refuses the request unless its credential has `scope`.
    pub fn require(&self, scope: baton_core::auth::Scope) -> Result<(), RpcError> {
        self.identity.require(scope).map_err(|e| {
            RpcError::new(
                baton_core::ErrorCode::PermissionDenied.jsonrpc_code(),
                e.to_string(),
            )
            .with_data(serde_json::json!({"code": "permission_denied", "scope": scope.as_str()}))
        })
    }
}

/// Everything a request handler needs to know and may use.
pub struct Ctx {
    /// The JSON-RPC id of the request being handled.
    pub request_id: Value,
    pub era: Era,
    pub principal: String,
    /// Who the request is and what it may do (its principal is `principal`).
    pub identity: baton_core::auth::Identity,
    /// The limits of the request's credential.
    pub quota: baton_core::auth::Quota,
    /// Where the request came from (for the audit log).
    pub origin: baton_core::auth::RequestOrigin,
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

    /// Sessions nobody uses are forgotten; those with a request or a stream are kept.
    #[test]
    fn idle_sessions_are_swept() {
        let sessions = Sessions::default();
        for i in 0..1000 {
            sessions.get(&format!("s{i}"));
        }
        let held = sessions.get("busy");
        let now = std::time::Instant::now();
        assert_eq!(sessions.sweep(now, SESSION_IDLE), 0, "all used just now");
        let later = now + SESSION_IDLE + std::time::Duration::from_secs(1);
        assert_eq!(sessions.sweep(later, SESSION_IDLE), 1000);
        assert_eq!(sessions.len(), 1, "the one in use stays");
        drop(held);
    }

    /// A request to the client whose call was dropped (cancelled, timed out) leaves no
    /// pending entry behind.
    #[tokio::test]
    async fn a_dropped_question_leaves_nothing_pending() {
        let session = Session::new();
        let (out, _rx) = tokio::sync::mpsc::unbounded_channel();
        let ask = session.ask(&out, "elicitation/create", json!({}));
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), ask).await;
        assert_eq!(session.pending_requests(), 0);
    }

    #[test]
    fn session_ids_carry_their_state() {
        let key = SessionKey::random();
        let id = session_id(&key, "2025-11-25", &json!({"elicitation": {}}), "alice");
        let era = decode_session_id(&key, &id, "alice").unwrap();
        assert!(era.legacy_tasks() && era.elicitation());
        assert!(decode_session_id(&key, "nonsense", "alice").is_none());
        assert!(
            decode_session_id(&SessionKey::random(), &id, "alice").is_none(),
            "another deployment's key does not open it"
        );
        assert!(
            decode_session_id(&key, &id, "bob").is_none(),
            "another principal cannot use it"
        );
        // Made up by someone without the key (any state, any principal tag): refused.
        let state = URL_SAFE_NO_PAD.encode(
            json!({"v": "2025-11-25", "c": {"sampling": {}}, "p": owner_tag("alice")}).to_string(),
        );
        let forged = format!("b2.{state}.00.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert!(decode_session_id(&key, &forged, "alice").is_none());
        // A signed id whose state is changed is refused too.
        let (body, signature) = id.rsplit_once('.').unwrap();
        let mut parts: Vec<&str> = body.split('.').collect();
        parts[1] = &state;
        let tampered = format!("{}.{signature}", parts.join("."));
        assert!(decode_session_id(&key, &tampered, "alice").is_none());
        assert_ne!(
            id,
            session_id(&key, "2025-11-25", &json!({"elicitation": {}}), "alice"),
            "random part"
        );
    }
}
