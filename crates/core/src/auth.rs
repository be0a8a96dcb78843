//! Who a request is, and what it may do: identities, scopes, and API key secrets.
//!
//! - An [`Identity`] is a principal (the tenant every task, workflow and queue view
//!   belongs to), the credential that proved it (an API key id or a token subject) and
//!   its [`Scope`]s.
//! - An API key's secret is `bk_<key id>_<random>`: the key id (public, 16 hex digits)
//!   finds the stored key at once, and only a SHA-256 of the whole secret is stored. The
//!   random part is 256 bits, so a fast hash is enough (there is nothing to brute-force),
//!   and the comparison is constant-time.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a credential may do. `admin` implies every other scope.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum Scope {
    /// Read tasks: get, list, results, events.
    #[serde(rename = "tasks:read")]
    TasksRead,
    /// Submit, cancel, retry tasks, and answer their input.
    #[serde(rename = "tasks:write")]
    TasksWrite,
    #[serde(rename = "workflows:read")]
    WorkflowsRead,
    #[serde(rename = "workflows:write")]
    WorkflowsWrite,
    /// Pause, resume and clear queues.
    #[serde(rename = "queues:admin")]
    QueuesAdmin,
    /// Add and remove MCP servers.
    #[serde(rename = "servers:admin")]
    ServersAdmin,
    /// Create, list, rotate and revoke API keys.
    #[serde(rename = "keys:admin")]
    KeysAdmin,
    /// Read the audit log.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Scrape `GET /metrics` (node-wide counters, all tenants' queues by name).
    #[serde(rename = "metrics:read")]
    MetricsRead,
    /// Everything, across tenants.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 10] = [
        Scope::TasksRead,
        Scope::TasksWrite,
        Scope::WorkflowsRead,
        Scope::WorkflowsWrite,
        Scope::QueuesAdmin,
        Scope::ServersAdmin,
        Scope::KeysAdmin,
        Scope::AuditRead,
        Scope::MetricsRead,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TasksRead => "tasks:read",
            Scope::TasksWrite => "tasks:write",
            Scope::WorkflowsRead => "workflows:read",
            Scope::WorkflowsWrite => "workflows:write",
            Scope::QueuesAdmin => "queues:admin",
            Scope::ServersAdmin => "servers:admin",
            Scope::KeysAdmin => "keys:admin",
            Scope::AuditRead => "audit:read",
            Scope::MetricsRead => "metrics:read",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown scope `{s}`; one of {}",
                    Scope::ALL.map(Scope::as_str).join(", ")
                )
            })
    }
}

/// Parses `tasks:read,tasks:write` (commas or spaces).
pub fn parse_scopes(text: &str) -> Result<BTreeSet<Scope>, String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// The principal every request names when no credential is asked for (a loopback node
/// without authentication).
pub const ANONYMOUS: &str = crate::principal::ANONYMOUS;

/// Who a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tenant: what it owns and sees.
    pub principal: String,
    /// How it proved it: `key:<key id>`, `jwt:<subject>`, or `none`.
    pub credential: String,
    pub scopes: BTreeSet<Scope>,
}

/// A request refused for a scope it does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this credential lacks the `{0}` scope")]
pub struct MissingScope(pub Scope);

impl Identity {
    /// Everything, as `principal`: a node that asks for no credentials (loopback, or
    /// authentication explicitly off), and `baton mcp` on stdio.
    pub fn trusted(principal: impl Into<String>) -> Identity {
        Identity {
            principal: principal.into(),
            credential: "none".into(),
            scopes: BTreeSet::from([Scope::Admin]),
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    pub fn require(&self, scope: Scope) -> Result<(), MissingScope> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(MissingScope(scope))
        }
    }

    /// Whether it may act for other principals (explicitly).
    pub fn is_admin(&self) -> bool {
        self.scopes.contains(&Scope::Admin)
    }
}

/// Limits that come with a request's credential, carried beside its [`Identity`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Most tasks the principal may have pending, running or waiting for input.
    pub max_active: Option<u64>,
}

/// Where a request came from, for the audit log: the peer's address and the request's
/// id (`x-request-id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    pub remote: Option<String>,
    pub request_id: Option<String>,
}

/// The prefix of every API key secret.
pub const KEY_PREFIX: &str = "bk_";

/// A freshly made API key secret: `(key id, secret)`. Shown once; only its hash is kept.
pub fn new_key_secret() -> (String, String) {
    let id: [u8; 8] = rand::random();
    let random: [u8; 32] = rand::random();
    let key_id = hex(&id);
    let secret = format!("{KEY_PREFIX}{key_id}_{}", URL_SAFE_NO_PAD.encode(random));
    (key_id, secret)
}

/// The key id a secret names, if it has the shape of one.
pub fn key_id_of(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(KEY_PREFIX)?;
    let (id, random) = rest.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && random.len() >= 32)
        .then_some(id)
}

/// What is stored of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` is the one `stored_hash` was made from (constant-time).
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A rate: `50/s`, `600/m`, `10000/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: std::time::Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid rate `{s}`: write it as N/s, N/m or N/h (e.g. 50/s)");
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" => std::time::Duration::from_secs(1),
            "m" => std::time::Duration::from_secs(60),
            "h" => std::time::Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(format!("invalid rate `{s}`: at least 1"));
        }
        Ok(Rate { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_admin_implies_all() {
        let s = parse_scopes("tasks:read, tasks:write").unwrap();
        assert_eq!(s.len(), 2);
        assert!(
            parse_scopes("tasks:read,bogus")
                .unwrap_err()
                .contains("unknown scope `bogus`")
        );
        let reader = Identity {
            principal: "a".into(),
            credential: "key:x".into(),
            scopes: parse_scopes("tasks:read").unwrap(),
        };
        assert!(reader.has(Scope::TasksRead));
        assert_eq!(
            reader.require(Scope::TasksWrite).unwrap_err().to_string(),
            "this credential lacks the `tasks:write` scope"
        );
        assert!(Identity::trusted("p").has(Scope::KeysAdmin));
    }

    #[test]
    fn secrets_name_their_key_and_only_their_hash_matches() {
        let (id, secret) = new_key_secret();
        assert_eq!(key_id_of(&secret), Some(id.as_str()));
        let stored = hash_secret(&secret);
        assert!(!stored.contains(&secret));
        assert!(secret_matches(&secret, &stored));
        assert!(!secret_matches(&format!("{secret}x"), &stored));
        for junk in [
            "",
            "bk_",
            "bk_zz_",
            "Bearer x",
            "bk_0123456789abcdef_short",
            "xx_0123456789abcdef_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(key_id_of(junk), None, "{junk}");
        }
    }

    #[test]
    fn rates_parse() {
        let r: Rate = "50/s".parse().unwrap();
        assert_eq!((r.count, r.per.as_secs()), (50, 1));
        assert_eq!(r.to_string(), "50/s");
        for bad in ["50", "0/s", "x/s", "5/d"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}
