//! Tools: what a task runs.
//!
//! A [`ToolProvider`] serves the tools of one server name (`baton` for the built-ins,
//! an upstream MCP server's name later). The [`ToolRegistry`] is the catalog: it resolves
//! qualified names (`server__tool`), and validates arguments against each tool's JSON
//! Schema at submit time, so a bad call is refused before anything is stored.

pub mod builtin;
pub mod context;
pub mod search;

pub use context::{ProgressReporter, TaskHandle, ToolContext};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use baton_core::TaskError;
use serde_json::Value;

/// One tool as a provider describes it.
#[derive(Debug, Clone)]
pub struct ToolInfo {
    /// The provider's own name for the tool (without the server prefix).
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub input_schema: Arc<Value>,
    /// The full MCP `Tool` object (name, title, annotations, outputSchema, execution…),
    /// passed through to MCP clients as the provider gave it.
    pub definition: Arc<Value>,
}

/// A tool's result: an MCP `CallToolResult` (`content`, `structuredContent`, `isError`,
/// `_meta`), kept as JSON so it passes through unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput(pub Value);

impl ToolOutput {
    pub fn text(text: impl Into<String>) -> Self {
        ToolOutput(serde_json::json!({"content": [{"type": "text", "text": text.into()}]}))
    }

    pub fn structured(text: impl Into<String>, structured: Value) -> Self {
        ToolOutput(serde_json::json!({
            "content": [{"type": "text", "text": text.into()}],
            "structuredContent": structured,
        }))
    }

    pub fn is_error(&self) -> bool {
        self.0.get("isError").and_then(Value::as_bool) == Some(true)
    }

    /// The text of the first text content block, for error messages.
    pub fn first_text(&self) -> Option<&str> {
        self.0
            .get("content")?
            .as_array()?
            .iter()
            .find_map(|c| (c.get("type")?.as_str()? == "text").then(|| c.get("text")?.as_str())?)
    }
}

/// A tool call that did not produce a result.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallError {
    pub code: String,
    pub message: String,
    /// Whether another attempt may succeed (transport failures: yes; bad input: no).
    pub retryable: bool,
}

impl ToolCallError {
    pub fn new(code: impl Into<String>, message: impl Into<String>, retryable: bool) -> Self {
        ToolCallError {
            code: code.into(),
            message: message.into(),
            retryable,
        }
    }

    /// The tool stopped because its task was cancelled.
    pub fn cancelled() -> Self {
        ToolCallError::new("cancelled", "the task was cancelled", false)
    }
}

impl From<ToolCallError> for TaskError {
    fn from(e: ToolCallError) -> Self {
        TaskError::new(e.code, e.message, e.retryable)
    }
}

#[async_trait]
pub trait ToolProvider: Send + Sync + 'static {
    /// The tools offered now.
    fn tools(&self) -> Vec<ToolInfo>;

    fn tool(&self, name: &str) -> Option<ToolInfo> {
        self.tools().into_iter().find(|t| t.name == name)
    }

    async fn call(
        &self,
        tool: &str,
        arguments: Value,
        ctx: ToolContext,
    ) -> Result<ToolOutput, ToolCallError>;

    /// Limits the claim must respect for this provider's tools (e.g. a server's
    /// `max_concurrency`), keyed by qualified names under `server`.
    fn claim_limits(&self, server: &str, separator: &str) -> Vec<baton_store::ConcurrencyLimit> {
        let _ = (server, separator);
        Vec::new()
    }

    /// Rates at which this provider's tasks may start (e.g. a server's `rate_limit`),
    /// keyed by qualified names under `server`.
    fn claim_rates(&self, server: &str, separator: &str) -> Vec<baton_store::RateLimit> {
        let _ = (server, separator);
        Vec::new()
    }

    /// `Err(why)` while the provider cannot run calls (e.g. its server's circuit is open):
    /// its tasks stay queued, with `why` shown to clients, instead of burning attempts.
    fn availability(&self) -> Result<(), String> {
        Ok(())
    }

    /// Whether results of this provider's tools may answer identical calls (a server's
    /// `cache`); `None`: the node's `[cache]` decides.
    fn cache(&self) -> Option<crate::cache::CacheSetting> {
        None
    }

    /// Whether the provider does not know its tools yet (a server on its first
    /// connection attempt). Calls to it are accepted unchecked and wait, instead of being
    /// refused as unknown tools in the moment after a node starts.
    fn starting(&self) -> bool {
        false
    }
}

/// A resolved tool: its provider and description.
#[derive(Clone)]
pub struct ResolvedTool {
    pub provider: Arc<dyn ToolProvider>,
    pub server: String,
    pub info: ToolInfo,
}

/// A compiled validator and the schema it was compiled from (`None`: the schema is
/// invalid and arguments are not checked).
type CachedValidator = (Arc<Value>, Option<Arc<jsonschema::Validator>>);

/// The catalog of every tool, by qualified name.
pub struct ToolRegistry {
    separator: String,
    providers: RwLock<BTreeMap<String, Arc<dyn ToolProvider>>>,
    /// Compiled argument validators, keyed by qualified name; recompiled when the schema
    /// object changes (providers hand out a new `Arc` when a tool changes).
    validators: Mutex<HashMap<String, CachedValidator>>,
    /// Bumped whenever the catalog may have changed (front doors announce `list_changed`).
    changed: tokio::sync::watch::Sender<u64>,
    /// The catalog indexed for `tool_search`, rebuilt when `changed` moves.
    search_index: search::IndexCache,
}

/// A qualified tool name and what it resolves to, for catalogs.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub qualified_name: String,
    pub server: String,
    pub info: ToolInfo,
}

impl ToolRegistry {
    pub fn new(separator: impl Into<String>) -> Self {
        ToolRegistry {
            separator: separator.into(),
            providers: RwLock::new(BTreeMap::new()),
            validators: Mutex::new(HashMap::new()),
            changed: tokio::sync::watch::channel(0).0,
            search_index: search::IndexCache::default(),
        }
    }

    /// A registry holding the built-in tools.
    pub fn with_builtins(separator: impl Into<String>) -> Self {
        let r = ToolRegistry::new(separator);
        r.register(
            baton_core::tool::BUILTIN_SERVER,
            Arc::new(builtin::Builtins),
        );
        r
    }

    pub fn separator(&self) -> &str {
        &self.separator
    }

    pub fn register(&self, server: &str, provider: Arc<dyn ToolProvider>) {
        self.providers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(server.to_string(), provider);
        self.notify_changed();
    }

    /// Watches catalog changes: servers coming and going, their tool lists changing.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Announces that a provider's tool list changed.
    pub fn notify_changed(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn unregister(&self, server: &str) {
        self.providers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(server);
        self.notify_changed();
    }

    pub fn servers(&self) -> Vec<String> {
        self.providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The tools that best match `query` (BM25 over names, descriptions and schemas),
    /// best first, at most `limit`; and how many tools the catalog holds.
    pub fn search(&self, query: &str, limit: usize) -> (Vec<search::ToolMatch>, usize) {
        let version = *self.changed.borrow();
        let index = self.search_index.get(version, || self.catalog());
        (index.search(query, limit), index.len())
    }

    /// Every tool, sorted by qualified name.
    pub fn catalog(&self) -> Vec<CatalogEntry> {
        let providers = self.providers.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (server, p) in providers.iter() {
            for info in p.tools() {
                out.push(CatalogEntry {
                    qualified_name: baton_core::tool::qualify(server, &info.name, &self.separator),
                    server: server.clone(),
                    info,
                });
            }
        }
        out.sort_by(|a, b| a.qualified_name.cmp(&b.qualified_name));
        out
    }

    /// The provider registered under a qualified name's server part, and the tool part.
    fn provider_of<'q>(
        &self,
        qualified: &'q str,
    ) -> Option<(Arc<dyn ToolProvider>, &'q str, &'q str)> {
        let (server, tool) = baton_core::tool::split_qualified(qualified, &self.separator)?;
        let provider = self
            .providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(server)?
            .clone();
        Some((provider, server, tool))
    }

    /// The server part of a qualified name, when its provider is registered but still
    /// learning its tools (see [`ToolProvider::starting`]).
    pub fn starting_server(&self, qualified: &str) -> Option<String> {
        let (provider, server, _) = self.provider_of(qualified)?;
        provider.starting().then(|| server.to_string())
    }

    /// Whether every provider knows its tools (no server is on its first connection
    /// attempt).
    pub fn settled(&self) -> bool {
        self.starting_servers().is_empty()
    }

    /// The servers still on their first connection attempt.
    pub fn starting_servers(&self) -> Vec<String> {
        self.providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, p)| p.starting())
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Waits (up to `limit`) until no provider is on its first connection attempt;
    /// `false` if some still are.
    pub async fn wait_settled(&self, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut changes = self.changes();
        while !self.settled() {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            // A first attempt ends with a catalog change (tools listed) or a failure (no
            // change): look again at least every 50 ms.
            let step = (now + std::time::Duration::from_millis(50)).min(deadline);
            let _ = tokio::time::timeout_at(step, changes.changed()).await;
        }
        true
    }

    /// Whether a registered provider lists no tool of this name (the name is wrong, not
    /// its server away).
    pub fn lacks(&self, qualified: &str) -> bool {
        self.provider_of(qualified).is_some_and(|(p, _, tool)| {
            !p.starting() && p.availability().is_ok() && p.tool(tool).is_none()
        })
    }

    pub fn resolve(&self, qualified: &str) -> Option<ResolvedTool> {
        let (provider, server, tool) = self.provider_of(qualified)?;
        let info = provider.tool(tool)?;
        Some(ResolvedTool {
            provider,
            server: server.to_string(),
            info,
        })
    }

    /// A hint for an unknown tool name: the closest known names.
    pub fn suggest(&self, qualified: &str) -> String {
        let names: Vec<String> = self
            .catalog()
            .into_iter()
            .map(|e| e.qualified_name)
            .collect();
        if names.is_empty() {
            return String::new();
        }
        if !qualified.contains(self.separator.as_str()) {
            // A server's own name for its tool: name the qualified ones it stands for.
            let suffix = format!("{}{qualified}", self.separator);
            let meant: Vec<&str> = names
                .iter()
                .filter(|n| n.ends_with(&suffix))
                .map(String::as_str)
                .take(5)
                .collect();
            if !meant.is_empty() {
                return format!(
                    "; tool names are qualified as server{}tool: did you mean `{}`?",
                    self.separator,
                    meant.join("` or `")
                );
            }
            return format!(
                "; tool names are qualified as server{}tool, e.g. `{}`",
                self.separator, names[0]
            );
        }
        let prefix: &str = qualified
            .split(self.separator.as_str())
            .next()
            .unwrap_or("");
        let same_server: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with(&format!("{prefix}{}", self.separator)))
            .take(10)
            .collect();
        let servers = self.servers();
        if same_server.is_empty() && servers.iter().any(|s| s == prefix) {
            // The server is registered but lists no such tool (yet: it may still be
            // connecting, or its tool list changed).
            format!("; server `{prefix}` lists no tool of that name at the moment")
        } else if same_server.is_empty() {
            format!(
                "; no server named `{prefix}` (servers: {})",
                servers.join(", ")
            )
        } else {
            format!(
                "; `{prefix}` has: {}",
                same_server
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }

    /// Claim limits of every provider; an unavailable provider's tools get a limit of 0 so
    /// that none of its tasks is claimed until it recovers.
    pub fn claim_limits(&self) -> Vec<baton_store::ConcurrencyLimit> {
        let providers = self.providers.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (server, p) in providers.iter() {
            if p.availability().is_err() {
                out.push(baton_store::ConcurrencyLimit {
                    selector: baton_store::ToolSelector::Prefix(format!(
                        "{server}{}",
                        self.separator
                    )),
                    max: 0,
                });
            } else {
                out.extend(p.claim_limits(server, &self.separator));
            }
        }
        out
    }

    /// Rate limits of every provider.
    pub fn claim_rates(&self) -> Vec<baton_store::RateLimit> {
        let providers = self.providers.read().unwrap_or_else(|e| e.into_inner());
        providers
            .iter()
            .flat_map(|(server, p)| p.claim_rates(server, &self.separator))
            .collect()
    }

    /// Why tasks of this tool are not starting now, if they are held back.
    pub fn waiting_reason(&self, qualified: &str) -> Option<String> {
        let (provider, _, _) = self.provider_of(qualified)?;
        provider.availability().err()
    }

    /// Checks `arguments` against the tool's input schema. `Err` lists what is wrong, by
    /// JSON pointer into the arguments.
    pub fn validate(
        &self,
        qualified: &str,
        tool: &ToolInfo,
        arguments: &Value,
    ) -> Result<(), String> {
        let validator = {
            let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get(qualified) {
                Some((schema, v)) if Arc::ptr_eq(schema, &tool.input_schema) => v.clone(),
                _ => {
                    let v = match jsonschema::validator_for(&tool.input_schema) {
                        Ok(v) => Some(Arc::new(v)),
                        Err(e) => {
                            tracing::warn!(tool = qualified, error = %e, "tool has an invalid input schema; its arguments are not validated");
                            None
                        }
                    };
                    cache.insert(
                        qualified.to_string(),
                        (tool.input_schema.clone(), v.clone()),
                    );
                    v
                }
            }
        };
        let Some(validator) = validator else {
            return Ok(());
        };
        let errors: Vec<String> = validator
            .iter_errors(arguments)
            .take(5)
            .map(|e| {
                let path = e.instance_path().to_string();
                let at = if path.is_empty() {
                    "(root)".to_string()
                } else {
                    path
                };
                format!("at `{at}`: {e}")
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that is registered but lists no tool yet (still connecting) is not
    /// described as missing: the hint used to say "no server named `t` (servers: baton,
    /// t)".
    #[test]
    fn suggestions_tell_a_quiet_server_from_a_missing_one() {
        struct Empty;
        #[async_trait]
        impl ToolProvider for Empty {
            fn tools(&self) -> Vec<ToolInfo> {
                Vec::new()
            }
            async fn call(
                &self,
                _: &str,
                _: Value,
                _: ToolContext,
            ) -> Result<ToolOutput, ToolCallError> {
                unreachable!()
            }
        }
        let r = ToolRegistry::with_builtins("__");
        r.register("t", Arc::new(Empty));
        let hint = r.suggest("t__effect");
        assert!(
            hint.contains("server `t` lists no tool of that name"),
            "{hint}"
        );
        let hint = r.suggest("nope__effect");
        assert!(hint.contains("no server named `nope`"), "{hint}");
        // A built-in's own name points at its qualified one.
        let hint = r.suggest("echo");
        assert!(hint.contains("did you mean `baton__echo`?"), "{hint}");
        let hint = r.suggest("no_such_tool");
        assert!(hint.contains("qualified as server__tool, e.g."), "{hint}");
    }
}
