//! The definition as written: YAML or JSON text (or a REST body already parsed as JSON)
//! into a [`Definition`].
//!
//! Parsing checks the shape only (required keys, types, unknown keys, each error naming its
//! path); limits, ids, the graph and references are [`crate::validate()`]'s business, so
//! that all of those problems are reported together.

use std::fmt;

use baton_core::submit::{Priority, SubmitRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A workflow definition: named steps, each a tool call, wired by `depends_on`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// 1 to 128 characters.
    pub name: String,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What a failed step does to the rest of the workflow.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// 1 to 1000 steps, in any order (the graph is given by `depends_on`).
    pub steps: Vec<Step>,
    /// Free-form labels kept with the workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// One step: a tool call that becomes one Baton task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// `[a-z0-9_-]{1,64}`, unique within the workflow.
    pub id: String,
    /// Qualified tool name (`server__tool`).
    pub tool: String,
    /// The tool's arguments; string values may hold `${steps.<id>.result…}` references
    /// (see [`crate::reference`]).
    #[serde(default)]
    pub arguments: Map<String, Value>,
    /// Steps that must complete before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Attempts of the step's task; the engine's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// Per-attempt timeout, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `low`, `normal`, `high` or 0 to 100, as for a single task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// The queue of the step's task; the engine's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

impl Step {
    /// The submission of this step's task, with `arguments` already resolved
    /// ([`crate::resolve`]). What the step leaves out (attempts, timeout, queue, priority)
    /// falls to the engine's defaults, exactly as for a single task.
    pub fn submit_request(&self, arguments: Value) -> SubmitRequest {
        SubmitRequest {
            tool: self.tool.clone(),
            arguments: Some(arguments),
            queue: self.queue.clone(),
            priority: self.priority,
            timeout_ms: self.timeout_ms,
            max_attempts: self.retry.map(|r| r.max_attempts),
            ..SubmitRequest::default()
        }
    }
}

/// A step's retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, 1 to 100 (1 = no retry).
    pub max_attempts: u32,
}

/// What a failed step does to the rest of the workflow.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Stop the workflow: cancel running steps, start nothing more.
    #[default]
    FailFast,
    /// Skip only what depends on the failed step; independent branches run to the end.
    Continue,
}

/// The syntax a definition was read from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text starting with `{`.
    Json,
    /// Any other text.
    Yaml,
    /// An already parsed JSON value ([`Definition::from_value`]).
    Value,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Value => "JSON value",
        })
    }
}

/// A definition that could not be read: bad syntax, a missing or unknown key, a wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DefinitionError {
    /// What the definition was read as.
    pub format: Format,
    /// Where in the document, e.g. `steps[1].argumnts`; `None` at the top level.
    pub path: Option<String>,
    /// 1-based line and column, when the parser knows them.
    pub line: Option<usize>,
    /// 1-based column, with `line`.
    pub column: Option<usize>,
    /// What is wrong, e.g. "unknown field `argumnts`, expected one of …".
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        write!(f, "{}", self.message)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, " ({} line {l}, column {c})", self.format),
            _ => write!(f, " ({})", self.format),
        }
    }
}

impl Definition {
    /// Reads a definition from YAML or JSON text. Text whose first non-blank character is
    /// `{` is read as JSON (with JSON's error messages); anything else as YAML.
    pub fn parse(text: &str) -> Result<Definition, DefinitionError> {
        let body = text.trim_start_matches('\u{feff}');
        if body.trim().is_empty() {
            return Err(DefinitionError {
                format: Format::Yaml,
                path: None,
                line: None,
                column: None,
                message: "the definition is empty".into(),
            });
        }
        if body.trim_start().starts_with('{') {
            Self::parse_json(body)
        } else {
            Self::parse_yaml(body)
        }
    }

    /// Reads a definition from a JSON value, e.g. a REST request body.
    pub fn from_value(value: Value) -> Result<Definition, DefinitionError> {
        serde_path_to_error::deserialize(value).map_err(|e| DefinitionError {
            format: Format::Value,
            path: path_of(e.path()),
            line: None,
            column: None,
            message: e.into_inner().to_string(),
        })
    }

    fn parse_json(text: &str) -> Result<Definition, DefinitionError> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de)
            .map_err(|e| (path_of(e.path()), e.into_inner()))
            .and_then(|d| de.end().map(|()| d).map_err(|e| (None, e)))
            .map_err(|(path, e)| {
                let (line, column) = (e.line(), e.column());
                let message = e.to_string();
                DefinitionError {
                    format: Format::Json,
                    path,
                    line: (line > 0).then_some(line),
                    column: (line > 0).then_some(column),
                    message: strip_suffix(&message, &format!(" at line {line} column {column}")),
                }
            })
    }

    fn parse_yaml(text: &str) -> Result<Definition, DefinitionError> {
        let mut options = serde_saphyr::Options::default();
        // The message is ours to lay out; no source excerpt in it.
        options.with_snippet = false;
        let mut path = None;
        serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
            // The closure must fail with the YAML error type for the parser to stop; keep
            // the path on the side.
            serde_path_to_error::deserialize(de).map_err(|e| {
                path = path_of(e.path());
                e.into_inner()
            })
        })
        .map_err(|e| {
            let location = e
                .location()
                .map(|l| (l.line() as usize, l.column() as usize));
            let message = e.to_string();
            let message = match location {
                Some((l, c)) => strip_suffix(&message, &format!(" at line {l}, column {c}")),
                None => message,
            };
            // Say it in the definition's terms, not the parser's.
            let message = message
                .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
                .replace("expected mapping start", "expected a mapping")
                .replace("expected sequence start", "expected a list");
            DefinitionError {
                format: Format::Yaml,
                path,
                line: location.map(|l| l.0),
                column: location.map(|l| l.1),
                message,
            }
        })
    }
}

/// `None` for the root (`.`) and for paths the tracker could not follow (`?`).
fn path_of(path: &serde_path_to_error::Path) -> Option<String> {
    let p = path.to_string();
    (p != "." && p != "?").then_some(p)
}

fn strip_suffix(message: &str, suffix: &str) -> String {
    message.strip_suffix(suffix).unwrap_or(message).to_string()
}
