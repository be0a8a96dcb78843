//! The result cache: which calls may be answered from a stored result and for how long
//! ([`CacheConfig`]), the key that names a call ([`call_key`]), and the upkeep of the
//! store's single-flight followers (settled when the call they wait for ends; a sweep
//! catches the ones a crash left).
//!
//! The store does the rest, in the transaction that stores a task (see
//! `baton_store::shared::cache`): a fresh completed call with the same key answers at
//! once (`cached_from`), an identical call in flight is waited for (`follows`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use baton_core::submit::CacheMode;
use baton_core::task::CacheLookup;
use baton_core::{EventKind, Task, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::inner::Inner;

/// A cache setting as written in configuration or a server definition: a time to live
/// (`"10m"`), `true` (the default time to live) or `false` (never cached).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum CacheSettingSpec {
    Switch(bool),
    Ttl(String),
}

impl CacheSettingSpec {
    pub fn parse(&self) -> Result<CacheSetting, String> {
        match self {
            CacheSettingSpec::Switch(false) => Ok(CacheSetting::Off),
            CacheSettingSpec::Switch(true) => Ok(CacheSetting::DefaultTtl),
            CacheSettingSpec::Ttl(s) => match humantime::parse_duration(s) {
                Ok(d) if d >= Duration::from_secs(1) => Ok(CacheSetting::Ttl(d)),
                Ok(_) => Err(format!("`{s}` is shorter than 1s")),
                Err(e) => Err(format!(
                    "`{s}` is not a duration such as \"10m\", nor true or false: {e}"
                )),
            },
        }
    }
}

/// Whether, and for how long, results of a tool may answer identical calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSetting {
    Off,
    DefaultTtl,
    Ttl(Duration),
}

/// `[cache]`: which tools are cached. A tool's own entry in `tools` decides, else its
/// server's entry there, else its server's definition (`cache`), else its annotations
/// (when `annotated`); nothing is cached otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// The time to live of `true` settings and of tools cached for their annotations.
    pub default_ttl: Duration,
    /// Cache tools whose annotations say they read only and are idempotent
    /// (`readOnlyHint` and `idempotentHint`).
    pub annotated: bool,
    /// By qualified tool name or server name.
    pub tools: BTreeMap<String, CacheSetting>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            default_ttl: Duration::from_secs(300),
            annotated: false,
            tools: BTreeMap::new(),
        }
    }
}

impl CacheConfig {
    /// How long results of `tool` may answer identical calls; `None`: not cached.
    /// `server` is its server's own setting, `definition` its MCP `Tool` object.
    pub fn ttl_of(
        &self,
        tool: &str,
        separator: &str,
        server: Option<CacheSetting>,
        definition: &Value,
    ) -> Option<Duration> {
        let by_server = || {
            let (name, _) = baton_core::tool::split_qualified(tool, separator)?;
            self.tools.get(name).copied()
        };
        let setting = self.tools.get(tool).copied().or_else(by_server).or(server);
        let setting = setting.or_else(|| {
            (self.annotated && safe_to_cache(definition)).then_some(CacheSetting::DefaultTtl)
        })?;
        match setting {
            CacheSetting::Off => None,
            CacheSetting::DefaultTtl => Some(self.default_ttl),
            CacheSetting::Ttl(d) => Some(d),
        }
    }

    /// The longest time to live any tool may have.
    pub fn longest_ttl(&self) -> Duration {
        self.tools
            .values()
            .filter_map(|s| match s {
                CacheSetting::Ttl(d) => Some(*d),
                _ => None,
            })
            .fold(self.default_ttl, Duration::max)
    }
}

/// Whether a tool's annotations say calling it again changes nothing and reads only.
fn safe_to_cache(definition: &Value) -> bool {
    let hint =
        |name| definition.pointer(&format!("/annotations/{name}")) == Some(&Value::Bool(true));
    hint("readOnlyHint") && hint("idempotentHint")
}

/// The key of a call: a SHA-256 of the principal, the tool and the arguments as
/// canonical JSON (object keys sorted, no whitespace), so key order and spacing make no
/// difference, while one principal's results never answer another's calls.
pub fn call_key(owner: &str, tool: &str, arguments: &Value) -> String {
    let mut text = String::new();
    canonical(arguments, &mut text);
    let mut h = Sha256::new();
    for part in [owner, tool, &text] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let mut out = String::with_capacity(64);
    for b in h.finalize() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// What a new task may take from the cache: `None` when its tool is not cached or the
/// request bypasses the cache.
pub(crate) fn lookup(
    ttl: Option<Duration>,
    mode: CacheMode,
    key: impl FnOnce() -> String,
    now: Timestamp,
) -> Option<CacheLookup> {
    let ttl = ttl?;
    let fresh_since = match mode {
        CacheMode::Bypass => return None,
        CacheMode::Refresh => None,
        CacheMode::Use => Some(Timestamp::from_millis(
            now.as_millis().saturating_sub(ttl.as_millis() as i64),
        )),
    };
    Some(CacheLookup {
        key: key(),
        fresh_since,
    })
}

/// Settles the tasks waiting for `leader`, which has just ended, and publishes what
/// changed. A failure is only logged: the maintenance sweep settles it later.
pub(crate) async fn settle(inner: &Inner, leader: &Task) {
    match inner
        .store
        .settle_followers(leader.id, inner.clock.now())
        .await
    {
        Ok(events) => {
            let price = inner.config.price_of(&leader.tool);
            for ev in events.iter().filter(|e| e.kind == EventKind::Completed) {
                crate::metrics::cache_saved(&leader.tool, ev.result.as_deref(), price);
            }
            inner.publisher.publish(&events);
        }
        Err(e) => {
            tracing::warn!(task_id = %leader.id, error = %e, "could not settle the calls waiting for this one yet")
        }
    }
}

/// Calls settled per sweep.
const SWEEP: u32 = 100;

/// Settles the calls that ended while others still wait for them and nobody settled
/// (a crash between the two writes, a lease rescue, a workflow's cancellation). Run by
/// the maintenance holder.
pub(crate) async fn sweep(inner: &Inner) {
    match inner
        .store
        .settle_ended_followed(inner.clock.now(), SWEEP)
        .await
    {
        Ok(events) if !events.is_empty() => {
            tracing::info!(
                events = events.len(),
                "settled calls waiting for identical calls that had ended"
            );
            inner.publisher.publish(&events);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "settling waiting calls failed"),
    }
}

/// What to drop from the result cache: the query of `DELETE /v1/cache`, the arguments of
/// the MCP tool `cache_invalidate`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidateCache {
    /// The qualified tool name (e.g. `server__tool`) whose results answer no more;
    /// absent: every tool's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

/// What an invalidation dropped.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CacheInvalidated {
    /// The tool, or `*` for every tool.
    pub tool: String,
    /// Fresh entries (completed calls that could still answer) dropped.
    pub dropped: u64,
}

impl Engine {
    /// Drops the result cache's entries of a tool, or of every tool.
    pub async fn invalidate(&self, req: &InvalidateCache) -> Result<CacheInvalidated, EngineError> {
        if let Some(t) = &req.tool
            && (t.is_empty() || t.len() > 256)
        {
            return Err(EngineError::Invalid(
                baton_core::submit::InvalidRequest::new(
                    "tool",
                    "must be a qualified tool name of 1 to 256 characters",
                ),
            ));
        }
        let dropped = self.invalidate_cache(req.tool.as_deref()).await?;
        Ok(CacheInvalidated {
            tool: req.tool.clone().unwrap_or_else(|| "*".into()),
            dropped,
        })
    }

    /// Stored results of `tool` (of every tool for `None`) answer no more calls; the
    /// next call of each runs. Returns how many fresh entries were dropped.
    pub async fn invalidate_cache(&self, tool: Option<&str>) -> Result<u64, EngineError> {
        let config = &self.inner().config;
        let ttl = tool
            .and_then(|t| {
                let r = self.inner().tools.resolve(t)?;
                config
                    .cache
                    .ttl_of(t, &config.separator, r.provider.cache(), &r.info.definition)
            })
            .unwrap_or_else(|| config.cache.longest_ttl());
        let now = self.now();
        let since = Timestamp::from_millis(now.as_millis().saturating_sub(ttl.as_millis() as i64));
        let dropped = self
            .inner()
            .store
            .invalidate_cache(tool, now, since)
            .await?;
        crate::metrics::cache_invalidated(tool, dropped);
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_ignore_key_order_and_tell_principals_apart() {
        let a = call_key(
            "alice",
            "s__t",
            &json!({"b": [1, {"y": 2, "x": 1}], "a": "é"}),
        );
        let b = call_key(
            "alice",
            "s__t",
            &json!({"a": "é", "b": [1, {"x": 1, "y": 2}]}),
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(
            a,
            call_key(
                "bob",
                "s__t",
                &json!({"a": "é", "b": [1, {"x": 1, "y": 2}]})
            )
        );
        assert_ne!(
            a,
            call_key(
                "alice",
                "s__u",
                &json!({"a": "é", "b": [1, {"x": 1, "y": 2}]})
            )
        );
        assert_ne!(
            call_key("alice", "s__t", &json!({"b": [2, 1]})),
            call_key("alice", "s__t", &json!({"b": [1, 2]})),
            "array order matters"
        );
        // The parts are length-prefixed: moving text between them changes the key.
        assert_ne!(
            call_key("ab", "c", &json!({})),
            call_key("a", "bc", &json!({}))
        );
    }

    #[test]
    fn settings_decide_in_order() {
        let safe = json!({"annotations": {"readOnlyHint": true, "idempotentHint": true}});
        let unsafe_ = json!({"annotations": {"readOnlyHint": true}});
        let mut c = CacheConfig::default();
        assert_eq!(c.ttl_of("s__t", "__", None, &safe), None, "off by default");
        c.annotated = true;
        assert_eq!(c.ttl_of("s__t", "__", None, &safe), Some(c.default_ttl));
        assert_eq!(c.ttl_of("s__t", "__", None, &unsafe_), None);
        let ten = Duration::from_secs(600);
        assert_eq!(
            c.ttl_of("s__t", "__", Some(CacheSetting::Ttl(ten)), &unsafe_),
            Some(ten),
            "the server's setting"
        );
        c.tools.insert("s".into(), CacheSetting::Off);
        assert_eq!(
            c.ttl_of("s__t", "__", Some(CacheSetting::Ttl(ten)), &safe),
            None
        );
        c.tools.insert("s__t".into(), CacheSetting::Ttl(ten));
        assert_eq!(
            c.ttl_of("s__t", "__", None, &safe),
            Some(ten),
            "the tool's own"
        );
        assert_eq!(c.longest_ttl(), ten);
    }

    #[test]
    fn settings_parse_with_clear_errors() {
        let p = |v: Value| {
            serde_json::from_value::<CacheSettingSpec>(v)
                .unwrap()
                .parse()
        };
        assert_eq!(p(json!(false)), Ok(CacheSetting::Off));
        assert_eq!(p(json!(true)), Ok(CacheSetting::DefaultTtl));
        assert_eq!(
            p(json!("10m")),
            Ok(CacheSetting::Ttl(Duration::from_secs(600)))
        );
        assert!(p(json!("soon")).unwrap_err().contains("not a duration"));
        assert!(p(json!("10ms")).unwrap_err().contains("shorter than 1s"));
    }

    #[test]
    fn modes() {
        let now = Timestamp::from_millis(1_000_000);
        let ttl = Some(Duration::from_secs(10));
        let key = || "k".to_string();
        assert_eq!(lookup(None, CacheMode::Use, key, now), None);
        assert_eq!(lookup(ttl, CacheMode::Bypass, key, now), None);
        let l = lookup(ttl, CacheMode::Use, key, now).unwrap();
        assert_eq!(l.fresh_since, Some(Timestamp::from_millis(990_000)));
        assert_eq!(
            lookup(ttl, CacheMode::Refresh, key, now)
                .unwrap()
                .fresh_since,
            None
        );
    }
}
