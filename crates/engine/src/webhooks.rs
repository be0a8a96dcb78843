//! Webhooks: HTTP callbacks for a principal's task and workflow events (and server
//! health), signed the Standard Webhooks way, delivered durably.
//!
//! The store writes a delivery (the outbox) in the transaction that appends the event
//! causing it (see `baton_store`'s `shared/webhooks.rs`), so a crash after the commit
//! loses none. Every process with an API runs [`delivery_loop`]: it claims due
//! deliveries under a lease (on PostgreSQL with `SKIP LOCKED`, so two nodes never send
//! the same one at once; a node killed mid-send means at most one more send, after its
//! lease expired), sends each, records the attempt (status, latency, error) and either
//! marks it delivered, retries after an exponential backoff with jitter, or gives up
//! (dead letter) once the delivery is older than `retry_for`.
//!
//! Signatures ([`sign`]): `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with
//! the base64-decoded part of the `whsec_…` secret after the prefix; during a rotation's
//! overlap both secrets sign, space-separated. A task's one-off `callback_url` is sent
//! the same way but unsigned (it has no secret); it carries the same `webhook-id`.
//!
//! SSRF: a delivery never reaches loopback, private (RFC 1918, ULA), link-local (cloud
//! metadata included), unspecified, CGNAT, multicast or broadcast addresses unless
//! `allow_networks` opens them ([`NetPolicy`]): checked after DNS resolution by the
//! client's resolver ([`GuardedResolver`]), for literal IP hosts before sending and on
//! every redirect (at most [`MAX_REDIRECTS`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use baton_core::Timestamp;
use baton_core::submit::InvalidRequest;
use baton_store::{AttemptRecord, Delivery, DeliveryNext, StoredWebhook};
use hmac::{Hmac, KeyInit, Mac};
use ipnet::IpNet;
use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::inner::Inner;
use crate::{Engine, EngineError};

/// Redirects a delivery follows at most.
pub const MAX_REDIRECTS: usize = 3;
/// Every event type a webhook can subscribe to.
pub const EVENT_TYPES: [&str; 9] = [
    "task.completed",
    "task.failed",
    "task.cancelled",
    "task.input_required",
    "workflow.completed",
    "workflow.failed",
    "workflow.cancelled",
    "server.down",
    "server.up",
];
/// Deliveries one loop turn claims at most.
const CLAIM_BATCH: u32 = 32;
/// Longest the loop sleeps without looking for due deliveries.
const POLL: Duration = Duration::from_millis(500);
/// How often old history is purged.
const PURGE_EVERY: Duration = Duration::from_secs(300);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Webhook settings (`[webhooks]` in the server's config).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Networks deliveries may reach although they are private, loopback and the like.
    pub allow_networks: Vec<IpNet>,
    /// How long one attempt may take (connect, send, answer).
    pub timeout: Duration,
    /// How long a delivery is retried before it is given up (dead letter).
    pub retry_for: Duration,
    /// The first retry's delay; each next one doubles (with jitter), up to an hour.
    pub retry_base: Duration,
    /// How long a rotated secret keeps signing besides the new one.
    pub rotation_overlap: Duration,
    /// Finished deliveries (and their attempts) are kept this long.
    pub history: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            allow_networks: Vec::new(),
            timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(24 * 3600),
            retry_base: Duration::from_secs(1),
            rotation_overlap: Duration::from_secs(24 * 3600),
            history: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// A new webhook: the body of `POST /v1/webhooks`, the arguments of `webhook_create`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where events are POSTed: an `http` or `https` URL.
    pub url: String,
    /// Event types: `task.completed`, `task.failed`, `task.cancelled`,
    /// `task.input_required`, `workflow.completed`, `workflow.failed`,
    /// `workflow.cancelled`, `server.down`, `server.up`, or the wildcards `task.*`,
    /// `workflow.*`, `server.*`.
    pub events: Vec<String>,
    /// Only tasks of this tool (qualified name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Only tasks of this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Only this workflow and its steps' tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// The signing secret, `whsec_` and base64 of 24 to 64 random bytes; generated when
    /// absent (and shown once, in the answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Events of every principal's tasks and workflows, not only the caller's (needs the
    /// `admin` scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_owners: Option<bool>,
}

/// A webhook as the API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    pub all_owners: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Until then the secret before the last rotation also signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A webhook just made, with its secret (shown this once).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: WebhookView,
    pub secret: String,
}

/// The caller's webhooks.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

/// The body of `POST /v1/webhooks/{id}/rotate` (optional).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// The new secret (`whsec_…`); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// How long the current secret keeps signing too, in seconds (default a day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_seconds: Option<u64>,
}

/// A rotated webhook: the new secret (shown this once) and until when the old one signs.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WebhookRotated {
    pub id: String,
    pub secret: String,
    pub previous_secret_until: Timestamp,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AttemptView {
    pub attempt: u32,
    pub at: Timestamp,
    /// The receiver's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A delivery of one event to a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct DeliveryView {
    /// The `webhook-id` header, the same for every attempt.
    pub id: String,
    pub event_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `pending`, `delivered` or `failed` (given up).
    pub status: String,
    pub attempts: u32,
    /// When the next attempt is due (pending only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_latency_ms: Option<u64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The attempts, oldest first (the newest 50).
    pub attempt_log: Vec<AttemptView>,
}

/// A page of a webhook's deliveries, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Which addresses deliveries may reach.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    allow: Vec<IpNet>,
}

impl NetPolicy {
    pub fn new(allow: Vec<IpNet>) -> NetPolicy {
        NetPolicy { allow }
    }

    /// Why `ip` is refused, if it is: a special-purpose range no configured network opens.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let why = special_range(ip)?;
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        Some(why)
    }
}

/// The special-purpose range `ip` is in, if any.
fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("CGNAT")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if v4.is_broadcast() || o[0] >= 240 {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return special_range(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some("private (ULA)")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

/// A resolver that drops the addresses [`NetPolicy`] refuses, and fails when none is
/// left: checked after resolution, so a public name pointing at a private address is
/// refused too.
struct GuardedResolver {
    policy: Arc<NetPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = Vec::new();
            let ok: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| match policy.refusal(a.ip()) {
                    Some(why) => {
                        refused.push(format!("{} ({why})", a.ip()));
                        false
                    }
                    None => true,
                })
                .collect();
            if ok.is_empty() {
                return Err(format!(
                    "refused: {host} resolves only to blocked addresses: {}",
                    refused.join(", ")
                )
                .into());
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Why `url` may not be delivered to, if it may not: its scheme, or a literal IP host
/// the policy refuses (names are checked when they resolve).
fn url_refusal(url: &reqwest::Url, policy: &NetPolicy) -> Option<String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Some(format!(
            "scheme `{}` is not allowed; use http or https",
            url.scheme()
        ));
    }
    let host = url.host_str()?;
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    policy
        .refusal(ip)
        .map(|why| format!("address {ip} is {why} and not in [webhooks] allow_networks"))
}

/// The HTTP client deliveries go through: guarded resolver and redirects, no proxy.
pub fn client(config: &WebhookConfig) -> Result<reqwest::Client, reqwest::Error> {
    let policy = Arc::new(NetPolicy::new(config.allow_networks.clone()));
    let redirect_policy = policy.clone();
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                let msg = format!("refused: more than {MAX_REDIRECTS} redirects");
                return attempt.error(msg);
            }
            match url_refusal(attempt.url(), &redirect_policy) {
                Some(why) => {
                    let msg = format!("refused redirect to {}: {why}", attempt.url());
                    attempt.error(msg)
                }
                None => attempt.follow(),
            }
        }))
        .timeout(config.timeout)
        .no_proxy()
        .user_agent(concat!("Baton-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with the decoded secret;
/// `None` when the secret is not `whsec_<base64>`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = secret_key(secret)?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: every secret valid at `now`, space-separated.
pub fn signature_header(
    w: &StoredWebhook,
    id: &str,
    timestamp: i64,
    body: &str,
    now: Timestamp,
) -> String {
    let mut sigs: Vec<String> = sign(&w.secret, id, timestamp, body).into_iter().collect();
    if let (Some(prev), Some(until)) = (&w.previous_secret, w.previous_until)
        && until > now
        && let Some(s) = sign(prev, id, timestamp, body)
    {
        sigs.push(s);
    }
    sigs.join(" ")
}

fn secret_key(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix("whsec_")?).ok()
}

fn new_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("whsec_{}", B64.encode(bytes))
}

fn check_secret(field: &str, s: &str) -> Result<(), InvalidRequest> {
    let Some(rest) = s.strip_prefix("whsec_") else {
        return Err(InvalidRequest::new(
            field,
            "a secret starts with `whsec_` followed by base64 (omit it to have one generated)",
        ));
    };
    match B64.decode(rest) {
        Ok(k) if (24..=64).contains(&k.len()) => Ok(()),
        Ok(k) => Err(InvalidRequest::new(
            field,
            format!(
                "the secret decodes to {} bytes; use 24 to 64 random bytes",
                k.len()
            ),
        )),
        Err(e) => Err(InvalidRequest::new(
            field,
            format!("the part after `whsec_` is not base64: {e}"),
        )),
    }
}

/// Expands wildcards and checks every name; the result is sorted and without repeats.
pub fn expand_events(events: &[String]) -> Result<Vec<String>, InvalidRequest> {
    if events.is_empty() {
        return Err(InvalidRequest::new(
            "events",
            format!("name at least one event: {}", EVENT_TYPES.join(", ")),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for e in events {
        let matched: Vec<&str> = match e.strip_suffix(".*") {
            Some(prefix) => EVENT_TYPES
                .iter()
                .copied()
                .filter(|t| t.split('.').next() == Some(prefix))
                .collect(),
            None => EVENT_TYPES.iter().copied().filter(|t| t == e).collect(),
        };
        if matched.is_empty() {
            return Err(InvalidRequest::new(
                "events",
                format!(
                    "unknown event `{e}`; known: {}, and the wildcards task.*, workflow.*, server.*",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        out.extend(matched.into_iter().map(str::to_string));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Checks a delivery URL as given (`field` names it): http(s), a host, and no literal
/// address the policy refuses.
pub fn check_url(field: &str, url: &str, config: &WebhookConfig) -> Result<(), InvalidRequest> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| InvalidRequest::new(field, format!("`{url}` is not a URL: {e}")))?;
    if parsed.host().is_none() {
        return Err(InvalidRequest::new(field, format!("`{url}` has no host")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(InvalidRequest::new(
            field,
            "credentials in the URL are not allowed; put a token in the path or query",
        ));
    }
    let policy = NetPolicy::new(config.allow_networks.clone());
    match url_refusal(&parsed, &policy) {
        Some(why) => Err(InvalidRequest::new(field, format!("`{url}`: {why}"))),
        None => Ok(()),
    }
}

fn optional_name(field: &str, v: Option<String>) -> Result<Option<String>, InvalidRequest> {
    match v {
        Some(s) if s.trim().is_empty() => Err(InvalidRequest::new(
            field,
            format!("{field} is empty; leave it out instead"),
        )),
        Some(s) if s.len() > 512 || s.contains('\0') => Err(InvalidRequest::new(
            field,
            format!("{field} must be at most 512 characters, without NUL"),
        )),
        other => Ok(other),
    }
}

fn view(w: &StoredWebhook, now: Timestamp) -> WebhookView {
    WebhookView {
        id: w.id.clone(),
        url: w.url.clone(),
        events: w.events.clone(),
        tool: w.tool.clone(),
        queue: w.queue.clone(),
        workflow: w.workflow.clone(),
        all_owners: w.all_owners,
        description: w.description.clone(),
        previous_secret_until: w.previous_until.filter(|u| *u > now),
        created_at: w.created_at,
        updated_at: w.updated_at,
    }
}

fn delivery_view(d: Delivery, attempts: Vec<baton_store::DeliveryAttempt>) -> DeliveryView {
    DeliveryView {
        next_attempt_at: (d.status == "pending").then_some(d.next_attempt_at),
        id: d.id,
        event_type: d.event_type,
        task_id: d.task_id,
        workflow_id: d.workflow_id,
        server: d.subject,
        status: d.status,
        attempts: d.attempts,
        last_status_code: d.last_status_code,
        last_error: d.last_error,
        last_latency_ms: d.last_latency_ms,
        created_at: d.created_at,
        updated_at: d.updated_at,
        attempt_log: attempts
            .into_iter()
            .map(|a| AttemptView {
                attempt: a.attempt,
                at: a.at,
                status_code: a.status_code,
                latency_ms: a.latency_ms,
                error: a.error,
            })
            .collect(),
    }
}

fn encode_cursor(at: Timestamp, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("dlv:{}:{id}", at.as_millis()))
}

fn decode_cursor(c: &str) -> Result<(Timestamp, String), InvalidRequest> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let rest = s.strip_prefix("dlv:")?;
            let (at, id) = rest.split_once(':')?;
            Some((Timestamp::from_millis(at.parse().ok()?), id.to_string()))
        })
        .ok_or_else(|| {
            InvalidRequest::new(
                "cursor",
                "invalid cursor; pass the next_cursor value of a previous page",
            )
        })
}

impl Engine {
    fn webhook_config(&self) -> &WebhookConfig {
        &self.inner().config.webhooks
    }

    /// Makes a webhook for `owner`; `admin` callers may ask for every owner's events.
    pub async fn create_webhook(
        &self,
        owner: &str,
        admin: bool,
        req: WebhookRequest,
    ) -> Result<WebhookCreated, EngineError> {
        check_url("url", &req.url, self.webhook_config())?;
        let events = expand_events(&req.events)?;
        let all_owners = req.all_owners.unwrap_or(false);
        if all_owners && !admin {
            return Err(InvalidRequest::new(
                "all_owners",
                "all_owners needs a credential with the admin scope",
            )
            .into());
        }
        let secret = match req.secret {
            Some(s) => {
                check_secret("secret", &s)?;
                s
            }
            None => new_secret(),
        };
        let description = optional_name("description", req.description)?;
        let now = self.now();
        let w = StoredWebhook {
            id: format!(
                "wh_{}",
                baton_core::TaskId::generate(now).as_uuid().simple()
            ),
            owner: owner.to_string(),
            url: req.url,
            events,
            tool: optional_name("tool", req.tool)?,
            queue: optional_name("queue", req.queue)?,
            workflow: optional_name("workflow", req.workflow)?,
            all_owners,
            secret: secret.clone(),
            previous_secret: None,
            previous_until: None,
            description,
            created_at: now,
            updated_at: now,
        };
        self.inner().store.insert_webhook(&w).await?;
        Ok(WebhookCreated {
            webhook: view(&w, now),
            secret,
        })
    }

    async fn owned_webhook(&self, owner: &str, id: &str) -> Result<StoredWebhook, EngineError> {
        self.inner()
            .store
            .get_webhook(id)
            .await?
            .filter(|w| w.owner == owner)
            .ok_or_else(|| EngineError::WebhookNotFound(id.to_string()))
    }

    pub async fn webhook(&self, owner: &str, id: &str) -> Result<WebhookView, EngineError> {
        Ok(view(&self.owned_webhook(owner, id).await?, self.now()))
    }

    pub async fn webhooks(&self, owner: &str) -> Result<WebhookList, EngineError> {
        let now = self.now();
        let all = self.inner().store.list_webhooks(Some(owner)).await?;
        Ok(WebhookList {
            webhooks: all.iter().map(|w| view(w, now)).collect(),
        })
    }

    /// Deletes a webhook and its deliveries.
    pub async fn delete_webhook(&self, owner: &str, id: &str) -> Result<(), EngineError> {
        if self.inner().store.delete_webhook(owner, id).await? {
            Ok(())
        } else {
            Err(EngineError::WebhookNotFound(id.to_string()))
        }
    }

    /// A new secret; the current one keeps signing for the overlap.
    pub async fn rotate_webhook(
        &self,
        owner: &str,
        id: &str,
        req: RotateRequest,
    ) -> Result<WebhookRotated, EngineError> {
        let secret = match req.secret {
            Some(s) => {
                check_secret("secret", &s)?;
                s
            }
            None => new_secret(),
        };
        let overlap = match req.overlap_seconds {
            Some(s) if s > 30 * 24 * 3600 => {
                return Err(InvalidRequest::new(
                    "overlap_seconds",
                    format!("overlap_seconds={s} is too long; at most 2592000 (30 days)"),
                )
                .into());
            }
            Some(s) => Duration::from_secs(s),
            None => self.webhook_config().rotation_overlap,
        };
        let now = self.now();
        let until = now.saturating_add(overlap);
        if !self
            .inner()
            .store
            .rotate_webhook_secret(owner, id, &secret, until, now)
            .await?
        {
            return Err(EngineError::WebhookNotFound(id.to_string()));
        }
        Ok(WebhookRotated {
            id: id.to_string(),
            secret,
            previous_secret_until: until,
        })
    }

    /// A page of a webhook's deliveries, newest first, each with its attempts.
    pub async fn webhook_deliveries(
        &self,
        owner: &str,
        id: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<DeliveryPage, EngineError> {
        let limit = crate::page::Page::parse(limit, None)?.limit;
        let before = cursor.map(decode_cursor).transpose()?;
        self.owned_webhook(owner, id).await?;
        let store = &self.inner().store;
        let rows = store.list_deliveries(id, before, limit).await?;
        let next_cursor = (rows.len() == limit as usize)
            .then(|| rows.last().map(|d| encode_cursor(d.event_at, &d.id)))
            .flatten();
        let mut deliveries = Vec::with_capacity(rows.len());
        for d in rows {
            let attempts = store.delivery_attempts(&d.id).await?;
            deliveries.push(delivery_view(d, attempts));
        }
        Ok(DeliveryPage {
            deliveries,
            next_cursor,
        })
    }

    /// Sends a delivery again now (same `webhook-id`), whatever became of it.
    pub async fn redeliver(
        &self,
        owner: &str,
        id: &str,
        delivery_id: &str,
    ) -> Result<DeliveryView, EngineError> {
        self.owned_webhook(owner, id).await?;
        let store = &self.inner().store;
        if !store.redeliver(id, delivery_id, self.now()).await? {
            return Err(EngineError::DeliveryNotFound(delivery_id.to_string()));
        }
        self.inner().publisher.deliveries.notify_one();
        let d = store
            .get_delivery(delivery_id)
            .await?
            .ok_or_else(|| EngineError::DeliveryNotFound(delivery_id.to_string()))?;
        let attempts = store.delivery_attempts(delivery_id).await?;
        Ok(delivery_view(d, attempts))
    }

    /// Records that this process saw MCP server `server` come up or go down, for
    /// `server.down` / `server.up` webhooks: only the process whose report changes the
    /// health the store keeps enqueues the event, so a change every node notices is
    /// delivered once. Returns how many deliveries were made.
    pub async fn server_health_changed(
        &self,
        server: &str,
        up: bool,
        detail: Option<&str>,
    ) -> Result<u64, EngineError> {
        let now = self.now();
        let event_type = if up { "server.up" } else { "server.down" };
        let body = json!({
            "type": event_type,
            "timestamp": now,
            "data": {"server": server, "status": if up { "up" } else { "down" }, "detail": detail},
        });
        let n = self
            .inner()
            .store
            .record_server_health(
                server,
                up,
                &baton_store::NewOwnerlessEvent {
                    key: format!("srv_{server}_{}", if up { "up" } else { "down" }),
                    event_type: event_type.into(),
                    subject: Some(server.to_string()),
                    payload: body.to_string(),
                    at: now,
                },
            )
            .await?;
        if n > 0 {
            self.inner().publisher.deliveries.notify_one();
        }
        Ok(n)
    }

    /// The body of a delivery's first attempt: the event and what it is about as it is now.
    async fn payload(&self, d: &Delivery) -> String {
        let store = &self.inner().store;
        let data = if let Some(task_id) = &d.task_id {
            match task_id.parse() {
                Ok(id) => match store.get_task(id).await {
                    Ok(Some(t)) => serde_json::to_value(crate::views::TaskView::new(t, None, true))
                        .unwrap_or(Value::Null),
                    _ => json!({"task_id": task_id}),
                },
                Err(_) => json!({"task_id": task_id}),
            }
        } else if let Some(wf) = &d.workflow_id {
            match self.workflow_view_of_any(wf).await {
                Ok(w) => serde_json::to_value(w).unwrap_or(Value::Null),
                Err(_) => json!({"workflow_id": wf}),
            }
        } else {
            json!({"server": d.subject})
        };
        json!({"type": d.event_type, "timestamp": d.event_at, "data": data}).to_string()
    }

    /// One attempt of a claimed delivery, recorded.
    async fn attempt(&self, client: &reqwest::Client, d: Delivery) -> Result<(), EngineError> {
        let inner = self.inner();
        let cfg = &inner.config.webhooks;
        let webhook = match &d.webhook_id {
            Some(id) => match inner.store.get_webhook(id).await? {
                Some(w) => Some(w),
                // Deleted meanwhile (its deliveries went with it).
                None => return Ok(()),
            },
            None => None,
        };
        let url = d
            .url
            .clone()
            .or_else(|| webhook.as_ref().map(|w| w.url.clone()))
            .unwrap_or_default();
        let body = match &d.payload {
            Some(p) => p.clone(),
            None => self.payload(&d).await,
        };
        let started = Instant::now();
        let now = self.now();
        let ts = now.as_millis() / 1000;
        let result = self
            .send(client, &url, &d.id, ts, &body, webhook.as_ref(), now)
            .await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let (status_code, error) = match result {
            Ok(code) if (200..300).contains(&code) => (Some(code), None),
            Ok(code) => (
                Some(code),
                Some(format!("the receiver answered HTTP {code}")),
            ),
            Err(e) => (None, Some(e)),
        };
        let at = self.now();
        let next = if error.is_none() {
            DeliveryNext::Delivered
        } else {
            let delay = backoff(cfg.retry_base, d.attempts);
            let retry_at = at.saturating_add(delay);
            if retry_at > d.created_at.saturating_add(cfg.retry_for) {
                DeliveryNext::Failed
            } else {
                DeliveryNext::RetryAt(retry_at)
            }
        };
        match (&next, &error) {
            (DeliveryNext::Delivered, _) => {
                tracing::debug!(delivery = %d.id, latency_ms, "webhook delivered")
            }
            (_, Some(e)) => {
                tracing::info!(delivery = %d.id, attempt = d.attempts, error = %e, next = ?next, "webhook attempt failed")
            }
            _ => {}
        }
        inner
            .store
            .record_delivery_attempt(&AttemptRecord {
                delivery_id: d.id.clone(),
                attempt: d.attempts,
                at,
                status_code,
                latency_ms,
                error,
                payload: Some(body),
                next,
            })
            .await?;
        Ok(())
    }

    /// POSTs `body`; the status code, or why there is none.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        client: &reqwest::Client,
        url: &str,
        id: &str,
        ts: i64,
        body: &str,
        webhook: Option<&StoredWebhook>,
        now: Timestamp,
    ) -> Result<u16, String> {
        let policy = NetPolicy::new(self.webhook_config().allow_networks.clone());
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("bad URL `{url}`: {e}"))?;
        if let Some(why) = url_refusal(&parsed, &policy) {
            return Err(format!("refused: {why}"));
        }
        let mut req = client
            .post(parsed)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .body(body.to_string());
        if let Some(w) = webhook {
            req = req.header("webhook-signature", signature_header(w, id, ts, body, now));
        }
        match req.send().await {
            Ok(resp) => Ok(resp.status().as_u16()),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Claims due deliveries and sends them, concurrently; returns how many it claimed.
    pub async fn deliver_due(&self, client: &reqwest::Client) -> Result<usize, EngineError> {
        let inner = self.inner();
        let now = self.now();
        let lease = now.saturating_add(inner.config.webhooks.timeout + Duration::from_secs(30));
        let due = inner
            .store
            .claim_deliveries(now, lease, CLAIM_BATCH)
            .await?;
        let n = due.len();
        let sends = due.into_iter().map(|d| async move {
            let id = d.id.clone();
            if let Err(e) = self.attempt(client, d).await {
                tracing::warn!(delivery = %id, error = %e, "a webhook attempt could not be recorded");
            }
        });
        futures::future::join_all(sends).await;
        Ok(n)
    }
}

/// The error of a failed request, with its causes (the resolver's refusal, say).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_redirect() {
        "redirect refused"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut msg = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// The wait after failed attempt `attempt` (1-based): `base` doubling, capped, with
/// jitter (between half and all of it).
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let full = base.saturating_mul(1u32 << exp).min(MAX_BACKOFF);
    full.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// Sends due deliveries, on every process with an API.
pub(crate) async fn delivery_loop(inner: Arc<Inner>) {
    let engine = Engine::from_inner(inner.clone());
    // Never a client without the guards: no deliveries rather than unguarded ones.
    let client = match client(&inner.config.webhooks) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the webhook HTTP client cannot be built; no webhook will be delivered");
            return;
        }
    };
    let mut last_purge = Instant::now();
    loop {
        let claimed = match engine.deliver_due(&client).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "webhook deliveries could not be claimed");
                0
            }
        };
        inner
            .publisher
            .deliveries_active
            .store(claimed > 0, std::sync::atomic::Ordering::Relaxed);
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            let before = engine.now().saturating_sub(inner.config.webhooks.history);
            if let Err(e) = inner.store.purge_deliveries(before, 1000).await {
                tracing::warn!(error = %e, "old webhook deliveries could not be purged");
            }
        }
        if claimed as u32 == CLAIM_BATCH {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = inner.publisher.deliveries.notified() => {}
            _ = inner.stop_background.cancelled() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_expand_and_unknown_ones_are_named() {
        assert_eq!(
            expand_events(&["workflow.*".into(), "task.failed".into()]).unwrap(),
            [
                "task.failed",
                "workflow.cancelled",
                "workflow.completed",
                "workflow.failed"
            ]
        );
        let e = expand_events(&["task.done".into()]).unwrap_err();
        assert!(e.message.contains("unknown event `task.done`"), "{e}");
        assert!(expand_events(&[]).is_err());
        assert!(expand_events(&["nope.*".into()]).is_err());
    }

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        let p = NetPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "ff02::1",
        ] {
            assert!(p.refusal(ip.parse().unwrap()).is_some(), "{ip} allowed");
        }
        for ip in [
            "93.184.216.34",
            "2606:4700::1111",
            "100.128.0.1",
            "172.32.0.1",
        ] {
            assert!(p.refusal(ip.parse().unwrap()).is_none(), "{ip} refused");
        }
        let open = NetPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(open.refusal("127.0.0.1".parse().unwrap()).is_none());
        assert!(open.refusal("10.0.0.1".parse().unwrap()).is_some());
        let cfg = WebhookConfig::default();
        let e = check_url("url", "http://169.254.169.254/latest", &cfg).unwrap_err();
        assert!(e.message.contains("169.254.169.254"), "{e}");
        assert!(check_url("url", "ftp://example.com/x", &cfg).is_err());
        assert!(check_url("url", "not a url", &cfg).is_err());
        assert!(check_url("url", "https://hooks.example.com/x", &cfg).is_ok());
    }

    /// The Standard Webhooks specification's published example: secret, id, timestamp
    /// and payload, and the signature it gives.
    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1614265330;
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, ts, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id, ts, body).is_none());
    }

    #[test]
    fn both_secrets_sign_during_a_rotation() {
        let now = Timestamp::from_millis(1_800_000_000_000);
        let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let new = new_secret();
        let mut w = StoredWebhook {
            id: "wh_1".into(),
            owner: "alice".into(),
            url: "https://x.example".into(),
            events: vec!["task.completed".into()],
            tool: None,
            queue: None,
            workflow: None,
            all_owners: false,
            secret: new.clone(),
            previous_secret: Some(old.clone()),
            previous_until: Some(now.saturating_add(Duration::from_secs(60))),
            description: None,
            created_at: now,
            updated_at: now,
        };
        let header = signature_header(&w, "msg_1", 1, "{}", now);
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [
                sign(&new, "msg_1", 1, "{}").unwrap().as_str(),
                sign(&old, "msg_1", 1, "{}").unwrap().as_str()
            ]
        );
        assert_ne!(parts[0], parts[1]);
        // After the overlap only the new secret signs.
        w.previous_until = Some(now);
        assert_eq!(
            signature_header(&w, "msg_1", 1, "{}", now),
            sign(&new, "msg_1", 1, "{}").unwrap()
        );
    }

    #[test]
    fn secrets_are_checked() {
        assert!(check_secret("secret", &new_secret()).is_ok());
        assert!(check_secret("secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(check_secret("secret", "whsec_!!!").is_err());
        assert!(check_secret("secret", "whsec_c2hvcnQ=").is_err());
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        let base = Duration::from_secs(1);
        for attempt in 1..6u32 {
            let d = backoff(base, attempt);
            let full = base * (1 << (attempt - 1));
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF);
    }
}
