//! Finding a tool among many: BM25 over each tool's name, description and input schema.
//!
//! A model facing hundreds of tools cannot read every schema; `tool_search` (MCP) and
//! `GET /v1/tools?q=` rank the catalog for a query instead. Each tool becomes one
//! document: its name and server (split into words, counted three times, since a name
//! that matches says more than a word in a description), its title and description,
//! and the names, descriptions and enum values of its arguments. Identifiers are split
//! at `_`, `-`, `.` and case changes, in documents and queries alike, so `get_weather`,
//! `getWeather` and "get weather" meet. The `bm25` crate scores; its English tokenizer
//! folds case and accents, drops stop words and stems.
//!
//! The index is built once per catalog version ([`super::ToolRegistry`] bumps it when a
//! server's tools change) and shared by every query until the next change.

use std::sync::Arc;

use bm25::{Embedder, EmbedderBuilder, Language, Scorer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::CatalogEntry;

/// Results a search returns when the caller names no limit.
pub const DEFAULT_LIMIT: u32 = 10;
/// The most results one search returns.
pub const MAX_LIMIT: u32 = 100;

/// A search of the catalog (the MCP tool `tool_search`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolSearch {
    /// What the tool should do, in words ("open a bug in our repo") or part of its
    /// name.
    pub query: String,
    /// At most this many tools, best first (default 10, at most 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The tools found, best first.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ToolSearchResult {
    pub tools: Vec<FoundTool>,
    /// How many tools the catalog holds.
    pub catalog_size: usize,
}

/// One tool found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FoundTool {
    /// Qualified name, `server__tool`: what to call.
    pub name: String,
    pub server: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// BM25 relevance; higher is better, comparable within one search only.
    pub score: f32,
    /// JSON Schema of its arguments.
    pub input_schema: Value,
}

/// The number of results to return for a caller's `limit`, or why it is refused.
pub fn limit(requested: Option<u32>) -> Result<usize, String> {
    match requested.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n as usize),
        n => Err(format!("limit must be between 1 and {MAX_LIMIT} (got {n})")),
    }
}

impl ToolSearch {
    /// Runs the search over `registry`'s catalog; a blank query or a bad limit is
    /// refused with the reason.
    pub fn run(&self, registry: &super::ToolRegistry) -> Result<ToolSearchResult, String> {
        if self.query.trim().is_empty() {
            return Err("query is empty: say what the tool should do".into());
        }
        let limit = limit(self.limit)?;
        let (found, catalog_size) = registry.search(&self.query, limit);
        Ok(ToolSearchResult {
            tools: found.into_iter().map(FoundTool::from).collect(),
            catalog_size,
        })
    }
}

impl From<ToolMatch> for FoundTool {
    fn from(m: ToolMatch) -> Self {
        FoundTool {
            name: m.entry.qualified_name,
            server: m.entry.server,
            description: m.entry.info.description,
            score: m.score,
            input_schema: (*m.entry.info.input_schema).clone(),
        }
    }
}

/// How many times a tool's name words count against one word of its description.
const NAME_WEIGHT: usize = 3;
/// How deep into nested argument objects the schema's words are read.
const SCHEMA_DEPTH: usize = 3;

/// One ranked tool.
#[derive(Debug, Clone)]
pub struct ToolMatch {
    pub entry: CatalogEntry,
    pub score: f32,
}

/// The catalog, indexed for search.
pub struct ToolIndex {
    embedder: Embedder,
    scorer: Scorer<usize>,
    entries: Vec<CatalogEntry>,
}

impl std::fmt::Debug for ToolIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolIndex")
            .field("tools", &self.entries.len())
            .finish()
    }
}

impl ToolIndex {
    pub fn build(entries: Vec<CatalogEntry>) -> Self {
        let documents: Vec<String> = entries.iter().map(document).collect();
        let corpus: Vec<&str> = documents.iter().map(String::as_str).collect();
        let embedder: Embedder =
            EmbedderBuilder::with_fit_to_corpus(Language::English, &corpus).build();
        let mut scorer = Scorer::new();
        for (i, d) in documents.iter().enumerate() {
            scorer.upsert(&i, embedder.embed(d));
        }
        ToolIndex {
            embedder,
            scorer,
            entries,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tools matching `query`, best first (ties by name), at most `limit`. A query
    /// with no word any tool has finds nothing.
    pub fn search(&self, query: &str, limit: usize) -> Vec<ToolMatch> {
        let query = split_identifiers(query);
        let mut found = self.scorer.matches(&self.embedder.embed(&query));
        found.sort_by(|a, b| {
            b.score.total_cmp(&a.score).then_with(|| {
                self.entries[a.id]
                    .qualified_name
                    .cmp(&self.entries[b.id].qualified_name)
            })
        });
        found
            .into_iter()
            .take(limit)
            .map(|m| ToolMatch {
                entry: self.entries[m.id].clone(),
                score: m.score,
            })
            .collect()
    }
}

/// The text a tool is found by.
fn document(entry: &CatalogEntry) -> String {
    let info = &entry.info;
    let mut text = String::new();
    let name = split_identifiers(&format!("{} {}", info.name, entry.server));
    for _ in 0..NAME_WEIGHT {
        text.push_str(&name);
        text.push(' ');
    }
    if let Some(title) = info.definition.get("title").and_then(Value::as_str) {
        text.push_str(&split_identifiers(title));
        text.push(' ');
    }
    if let Some(d) = &info.description {
        text.push_str(&split_identifiers(d));
        text.push(' ');
    }
    schema_words(&info.input_schema, SCHEMA_DEPTH, &mut text);
    text
}

/// Argument names, their descriptions and enum values, into `out`.
fn schema_words(schema: &Value, depth: usize, out: &mut String) {
    if depth == 0 {
        return;
    }
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, prop) in props {
        out.push_str(&split_identifiers(name));
        out.push(' ');
        for key in ["title", "description"] {
            if let Some(s) = prop.get(key).and_then(Value::as_str) {
                out.push_str(&split_identifiers(s));
                out.push(' ');
            }
        }
        if let Some(values) = prop.get("enum").and_then(Value::as_array) {
            for v in values.iter().filter_map(Value::as_str) {
                out.push_str(&split_identifiers(v));
                out.push(' ');
            }
        }
        schema_words(prop, depth - 1, out);
        if let Some(items) = prop.get("items") {
            schema_words(items, depth - 1, out);
        }
    }
}

/// `getWeather_v2 list-files` → `get Weather v2 list files`: identifiers split into
/// the words they are made of (other text passes through).
pub fn split_identifiers(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut prev: Option<char> = None;
    for c in text.chars() {
        match c {
            '_' | '-' | '.' | '/' | ':' => {
                out.push(' ');
                prev = None;
                continue;
            }
            _ => {}
        }
        if let Some(p) = prev
            && c.is_uppercase()
            && (p.is_lowercase() || p.is_ascii_digit())
        {
            out.push(' ');
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

/// An index shared until the catalog changes.
#[derive(Debug, Default)]
pub(super) struct IndexCache {
    built: std::sync::Mutex<Option<(u64, Arc<ToolIndex>)>>,
}

impl IndexCache {
    pub(super) fn get(
        &self,
        version: u64,
        catalog: impl FnOnce() -> Vec<CatalogEntry>,
    ) -> Arc<ToolIndex> {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        match &*built {
            Some((v, index)) if *v == version => index.clone(),
            _ => {
                let index = Arc::new(ToolIndex::build(catalog()));
                *built = Some((version, index.clone()));
                index
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tools::ToolInfo;

    fn tool(server: &str, name: &str, description: &str, schema: Value) -> CatalogEntry {
        CatalogEntry {
            qualified_name: format!("{server}__{name}"),
            server: server.to_string(),
            info: ToolInfo {
                name: name.to_string(),
                description: Some(description.to_string()),
                input_schema: Arc::new(schema),
                definition: Arc::new(json!({"name": name})),
            },
        }
    }

    fn catalog() -> Vec<CatalogEntry> {
        vec![
            tool(
                "weather",
                "get_forecast",
                "Forecast for the next days at a place.",
                json!({"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}}),
            ),
            tool(
                "github",
                "createIssue",
                "Open an issue in a repository.",
                json!({"type": "object", "properties": {"repo": {"type": "string"}, "title": {"type": "string"}}}),
            ),
            tool(
                "files",
                "read_file",
                "Read a file's contents from disk.",
                json!({"type": "object", "properties": {"path": {"type": "string"}, "encoding": {"enum": ["utf8", "base64"]}}}),
            ),
            tool(
                "db",
                "query",
                "Run a read-only SQL statement against the warehouse.",
                json!({"type": "object", "properties": {"sql": {"type": "string"}}}),
            ),
        ]
    }

    fn top(index: &ToolIndex, q: &str) -> Option<String> {
        index
            .search(q, 1)
            .first()
            .map(|m| m.entry.qualified_name.clone())
    }

    #[test]
    fn identifiers_split_into_words() {
        assert_eq!(split_identifiers("getWeather_v2"), "get Weather v2");
        assert_eq!(split_identifiers("list-files.now"), "list files now");
        assert_eq!(split_identifiers("HTTPServer"), "HTTPServer");
        assert_eq!(split_identifiers("plain text"), "plain text");
    }

    #[test]
    fn ranks_by_name_description_and_schema() {
        let index = ToolIndex::build(catalog());
        assert_eq!(
            top(&index, "weather forecast").as_deref(),
            Some("weather__get_forecast")
        );
        // The name, written another way.
        assert_eq!(
            top(&index, "create_issue").as_deref(),
            Some("github__createIssue")
        );
        // Only the description says it.
        assert_eq!(top(&index, "SQL warehouse").as_deref(), Some("db__query"));
        // Only the schema says it (an argument's description, an enum value).
        assert_eq!(
            top(&index, "city").as_deref(),
            Some("weather__get_forecast")
        );
        assert_eq!(top(&index, "base64").as_deref(), Some("files__read_file"));
        // Stemming: "reading files" meets "read_file".
        assert_eq!(
            top(&index, "reading files").as_deref(),
            Some("files__read_file")
        );
    }

    #[test]
    fn nothing_matches_an_unknown_word() {
        let index = ToolIndex::build(catalog());
        assert!(index.search("zyzzyva", 10).is_empty());
        assert!(index.search("", 10).is_empty());
    }

    #[test]
    fn limit_and_order_are_kept() {
        let index = ToolIndex::build(catalog());
        let all = index.search("file issue forecast sql", 10);
        assert_eq!(all.len(), 4);
        assert!(all.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(index.search("file issue forecast sql", 2).len(), 2);
    }

    #[test]
    fn the_cache_rebuilds_only_on_a_new_version() {
        let cache = IndexCache::default();
        let a = cache.get(1, catalog);
        let b = cache.get(1, || panic!("rebuilt for the same version"));
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache.get(2, || catalog()[..1].to_vec());
        assert_eq!(c.len(), 1);
    }
}
