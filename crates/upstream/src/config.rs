//! How an MCP server is described: in `[[servers]]` of the config file, or in the body of
//! `POST /v1/servers`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::redact;
use crate::secrets::reference;

// `Debug` hides what `redacted` hides: env and header values, credentials in args and URL.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `[a-z0-9-]+`, unique; the prefix of the server's tools (`name__tool`).
    pub name: String,
    /// stdio: the program Baton spawns (in its own process group) and supervises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment of the spawned program. Values are secrets: never shown, stored
    /// encrypted. A value may reference Baton's environment or a file, resolved when the
    /// server starts: `${env:NAME}`, `${file:PATH}` (e.g. `Bearer ${env:API_TOKEN}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Streamable HTTP: the server's MCP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Sent with every HTTP request (e.g. `Authorization`). Values are secrets: never shown,
    /// stored encrypted; references as in `env`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Capabilities, for discovery (`GET /v1/servers?tag=X`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Servers of one group are replicas; `group__tool` goes to the healthy member with the
    /// fewest calls in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Most calls in flight on this server, across all of Baton's workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// How fast calls to this server may start, across the cluster (`20/s`, `600/m`,
    /// `10000/h`); tasks over the rate wait, with a `waiting_reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    /// Whether results of this server's tools answer identical calls of the same
    /// principal, and for how long: a time to live (`"10m"`), `true` (the node's
    /// `[cache] default_ttl`) or `false` (never); the node's `[cache.tools]` entries win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<baton_engine::cache::CacheSettingSpec>,
    /// Longest a call may take before it is cancelled and fails with a timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retry results the tool marks `isError` (by default they fail the task at once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_tool_errors: bool,
    /// `false`: MCP clients see this server's tools, prompts and resources under their
    /// own names (transparent mode, to stand in front of one server without renaming
    /// anything); REST and workflows still use `name__tool`. At most one server may be
    /// transparent.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub qualified: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// How Baton reaches a server (its `Debug` hides env and header values).
#[derive(Clone, PartialEq, Eq)]
pub enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// A map with its values replaced, for `Debug`.
fn masked(map: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    map.keys().map(|k| (k.as_str(), redact::MASK)).collect()
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("args", &redact::args(&self.args))
            .field("env", &masked(&self.env))
            .field("cwd", &self.cwd)
            .field("url", &self.url.as_deref().map(redact::url))
            .field("headers", &masked(&self.headers))
            .field("tags", &self.tags)
            .field("group", &self.group)
            .field("max_concurrency", &self.max_concurrency)
            .field("rate_limit", &self.rate_limit)
            .field("cache", &self.cache)
            .field("timeout_ms", &self.timeout_ms)
            .field("retry_tool_errors", &self.retry_tool_errors)
            .field("qualified", &self.qualified)
            .finish()
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", &redact::args(args))
                .field("env", &masked(env))
                .field("cwd", cwd)
                .finish(),
            Transport::Http { url, headers } => f
                .debug_struct("Http")
                .field("url", &redact::url(url))
                .field("headers", &masked(headers))
                .finish(),
        }
    }
}

fn check_name(kind: &str, name: &str) -> Result<(), String> {
    baton_core::tool::validate_name(kind, name, &[])
}

impl ServerConfig {
    /// Checks the definition and says how to reach the server. Messages name the field.
    pub fn validate(&self) -> Result<Transport, String> {
        check_name("server", &self.name).map_err(|m| format!("name: {m}"))?;
        if self.name == baton_core::tool::BUILTIN_SERVER {
            return Err("name: `baton` is reserved for the built-in tools".into());
        }
        if !self.qualified && self.group.is_some() {
            return Err("qualified: a member of a group is called through its group's name; it cannot be transparent".into());
        }
        if let Some(g) = &self.group {
            check_name("group", g).map_err(|m| format!("group: {m}"))?;
            if *g == self.name {
                return Err("group: must differ from the server's own name".into());
            }
        }
        for t in &self.tags {
            if t.is_empty() || t.len() > 64 || t.chars().any(char::is_whitespace) {
                return Err(format!(
                    "tags: `{t}` must be 1-64 characters without spaces"
                ));
            }
        }
        if self.max_concurrency == Some(0) {
            return Err("max_concurrency: must be at least 1".into());
        }
        if let Some(r) = &self.rate_limit {
            r.parse::<baton_core::auth::Rate>()
                .map_err(|m| format!("rate_limit: {m}"))?;
        }
        if let Some(c) = &self.cache {
            c.parse().map_err(|m| format!("cache: {m}"))?;
        }
        if self.timeout_ms == Some(0) {
            return Err("timeout_ms: must be at least 1".into());
        }
        for (field, map) in [("env", &self.env), ("headers", &self.headers)] {
            for (k, v) in map {
                reference::parse(v).map_err(|m| format!("{field}: `{k}`: {m}"))?;
            }
        }
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => {
                Err("give either `command` (stdio) or `url` (HTTP), not both".into())
            }
            (None, None) => Err(
                "give `command` (a program to run over stdio) or `url` (Streamable HTTP)".into(),
            ),
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return Err("command: must not be empty".into());
                }
                if !self.headers.is_empty() {
                    return Err("headers: only for HTTP servers (`url`)".into());
                }
                Ok(Transport::Stdio {
                    command: command.clone(),
                    args: self.args.clone(),
                    env: self.env.clone(),
                    cwd: self.cwd.clone(),
                })
            }
            (None, Some(url)) => {
                let shown = redact::url(url);
                let parsed: http::Uri = url
                    .parse()
                    .map_err(|e| format!("url: `{shown}` is not a valid URL ({e})"))?;
                if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none()
                {
                    return Err(format!("url: `{shown}` must be an http:// or https:// URL"));
                }
                if !self.args.is_empty() || !self.env.is_empty() || self.cwd.is_some() {
                    return Err("args, env and cwd are only for stdio servers (`command`)".into());
                }
                for (k, v) in &self.headers {
                    http::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| format!("headers: `{k}` is not a valid header name"))?;
                    http::HeaderValue::from_str(v).map_err(|_| {
                        format!("headers: the value of `{k}` is not a valid header value")
                    })?;
                }
                Ok(Transport::Http {
                    url: url.clone(),
                    headers: self.headers.clone(),
                })
            }
        }
    }

    /// The definition as shown to clients: env and header values replaced, credentials in
    /// `args` and `url` hidden (see [`redact`]).
    pub fn redacted(&self) -> Value {
        let mut shown = self.clone();
        shown.args = redact::args(&self.args);
        shown.url = self.url.as_deref().map(redact::url);
        let mut v = serde_json::to_value(&shown).unwrap_or_else(|_| json!({}));
        for key in ["env", "headers"] {
            if let Some(map) = v.get_mut(key).and_then(Value::as_object_mut) {
                for val in map.values_mut() {
                    *val = Value::String(redact::MASK.into());
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio(name: &str) -> ServerConfig {
        ServerConfig {
            name: name.into(),
            command: Some("npx".into()),
            args: vec!["-y".into(), "x".into()],
            env: [("KEY".into(), "secret".into())].into(),
            cwd: None,
            url: None,
            headers: BTreeMap::new(),
            tags: vec!["demo".into()],
            group: None,
            max_concurrency: Some(8),
            rate_limit: None,
            cache: None,
            timeout_ms: None,
            retry_tool_errors: false,
            qualified: true,
        }
    }

    #[test]
    fn validates_and_names_the_field() {
        assert!(matches!(
            stdio("everything").validate(),
            Ok(Transport::Stdio { .. })
        ));
        assert!(
            stdio("Everything")
                .validate()
                .unwrap_err()
                .starts_with("name:")
        );
        assert!(stdio("baton").validate().unwrap_err().contains("reserved"));
        let mut both = stdio("a");
        both.url = Some("http://x/mcp".into());
        assert!(both.validate().unwrap_err().contains("not both"));
        let mut neither = stdio("a");
        neither.command = None;
        assert!(neither.validate().unwrap_err().contains("give `command`"));
        let mut http = stdio("a");
        http.command = None;
        http.args.clear();
        http.env.clear();
        http.url = Some("ftp://x".into());
        assert!(http.validate().unwrap_err().starts_with("url:"));
        http.url = Some("http://127.0.0.1:9/mcp".into());
        http.headers.insert("Bad Header".into(), "x".into());
        assert!(http.validate().unwrap_err().contains("Bad Header"));
        let mut zero = stdio("a");
        zero.max_concurrency = Some(0);
        assert!(zero.validate().unwrap_err().starts_with("max_concurrency"));
    }

    #[test]
    fn secrets_are_redacted() {
        let mut c = stdio("a");
        c.env.insert("TOKEN".into(), "hunter2".into());
        let shown = c.redacted().to_string();
        assert!(
            !shown.contains("hunter2") && !shown.contains("secret"),
            "{shown}"
        );
        assert!(shown.contains("TOKEN"));
    }

    #[test]
    fn views_and_debug_hide_credentials() {
        let mut c = stdio("a");
        c.args = vec!["--api-key".into(), "k3y".into(), "--token=t0k".into()];
        c.env.insert("TOKEN".into(), "hunter2".into());
        let shown = c.redacted();
        assert_eq!(shown["args"], json!(["--api-key", "***", "--token=***"]));
        let debug = format!("{c:?} {:?}", c.validate().unwrap());
        for secret in ["k3y", "t0k", "hunter2", "secret"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("TOKEN"), "{debug}");

        let mut h = stdio("b");
        h.command = None;
        h.args.clear();
        h.env.clear();
        h.url = Some("https://u:pw@h.example/mcp?access_token=tk&x=1".into());
        h.headers
            .insert("Authorization".into(), "Bearer b3arer".into());
        let shown = h.redacted();
        assert_eq!(
            shown["url"],
            "https://u:***@h.example/mcp?access_token=***&x=1"
        );
        assert_eq!(shown["headers"]["Authorization"], "***");
        let debug = format!("{h:?} {:?}", h.validate().unwrap());
        for secret in ["pw@", "tk&", "b3arer"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        h.url = Some("ftp://u:pw@h/".into());
        let e = h.validate().unwrap_err();
        assert!(e.starts_with("url:") && !e.contains("pw"), "{e}");
    }

    #[test]
    fn references_are_checked() {
        let mut c = stdio("a");
        c.env.insert("A".into(), "${env:GOOD}".into());
        c.env
            .insert("B".into(), "Bearer ${file:/run/secrets/b}".into());
        assert!(c.validate().is_ok());
        c.env.insert("C".into(), "${env:NOT-A-NAME}".into());
        let e = c.validate().unwrap_err();
        assert!(e.starts_with("env: `C`:"), "{e}");
        c.env.remove("C");
        c.env.insert("D".into(), "${file:".into());
        assert!(c.validate().unwrap_err().contains("not closed"));
    }
}
