//! References from a step's arguments to earlier steps' results.
//!
//! A string anywhere in `arguments` (object values and array items, at any depth; object
//! keys are never read) may contain `${steps.<id>.result<path>}`, where `<path>` is a
//! sequence of `.field`, `[index]` and `["quoted key"]` segments. Field names written
//! with a dot may contain letters, digits, `_` and `-`; any other key needs the quoted
//! form, where `\"` and `\\` are the escapes. Spaces just inside `${` and `}` are allowed.
//!
//! - A string that is exactly one reference becomes the referenced value, whatever its
//!   type: `"${steps.fetch.result.structuredContent.rows}"` → an array.
//! - A reference inside a longer string is interpolated: strings as they are, every other
//!   value as compact JSON.
//! - `$${` is a literal `${`.
//!
//! The grammar is `root.attribute` then the path; only the `steps.<id>.result` root is
//! known today, and [`Source`] is where `steps.<id>.status` or `workflow.…` would go.

use std::fmt;

use serde_json::Value;

/// What a reference reads from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// `steps.<id>.result`: the stored result of step `<id>`.
    StepResult(String),
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// `.name` or `["any key"]`.
    Field(String),
    /// `[3]`.
    Index(usize),
}

/// A parsed `${…}` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// What it reads from.
    pub source: Source,
    /// Where inside the source's value; empty for the whole value.
    pub path: Vec<Segment>,
}

/// A string in `arguments` whose reference syntax is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}bad reference `{text}`: {message}", location(at))]
pub struct ReferenceError {
    /// Where the string is inside the value searched, e.g. `rows` or `items[2].sql`;
    /// empty when the value itself is the string.
    pub at: String,
    /// The offending `${…}` text (to the end of the string when `}` is missing).
    pub text: String,
    /// What is wrong with it.
    pub message: String,
}

/// Why [`resolve`] could not build a step's arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A string in the arguments has bad reference syntax.
    #[error(transparent)]
    Syntax(#[from] ReferenceError),
    /// The lookup has no result for the step (it has not completed).
    #[error("{reference}: step `{step}` has no result")]
    NoResult {
        /// The step referenced.
        step: String,
        /// The reference, e.g. `steps.fetch.result.rows`.
        reference: String,
    },
    /// The path leads nowhere: a missing field, an index out of range, a wrong type.
    #[error("{reference}: {message}")]
    Missing {
        /// The step referenced.
        step: String,
        /// The reference, e.g. `steps.fetch.result.rows`.
        reference: String,
        /// Where the path stopped, e.g. "`structuredContent` has no field `rows`".
        message: String,
    },
    /// The arguments would be larger than [`ResolveLimits::max_bytes`] once references
    /// are replaced by the values they name.
    #[error(
        "the arguments would be larger than {limit} bytes once references are replaced by the results they name (at {reference})"
    )]
    TooLarge {
        /// The limit, in bytes of JSON.
        limit: usize,
        /// The reference whose value went over it.
        reference: String,
    },
    /// The arguments would nest deeper than [`ResolveLimits::max_depth`].
    #[error(
        "the arguments would nest deeper than {limit} levels once references are replaced by the results they name (at {reference})"
    )]
    TooDeep {
        /// The limit, in levels of arrays and objects.
        limit: usize,
        /// The reference whose value went over it.
        reference: String,
    },
}

/// Bounds on resolved arguments: what is accepted must be storable and readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolveLimits {
    /// Largest resolved arguments, in bytes of JSON.
    pub max_bytes: usize,
    /// Deepest nesting of the resolved arguments.
    pub max_depth: usize,
}

impl Default for ResolveLimits {
    fn default() -> Self {
        ResolveLimits {
            max_bytes: 4 * 1024 * 1024,
            max_depth: baton_core::value::MAX_JSON_DEPTH,
        }
    }
}

fn location(at: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!("argument `{at}`: ")
    }
}

impl Reference {
    /// Parses the text between `${` and `}`, e.g. `steps.fetch.result.rows[0]`.
    pub fn parse(expression: &str) -> Result<Reference, String> {
        let mut cursor = Cursor {
            text: expression,
            pos: 0,
        };
        let reference = cursor.reference()?;
        match cursor.peek() {
            None => Ok(reference),
            Some(c) => Err(format!("unexpected `{c}` at position {}", cursor.pos + 1)),
        }
    }

    /// The step this reference reads from.
    pub fn step(&self) -> Option<&str> {
        match &self.source {
            Source::StepResult(step) => Some(step),
        }
    }

    /// Follows the path into `root` (the source's value). On failure, says where it stopped.
    pub fn select<'v>(&self, root: &'v Value) -> Result<&'v Value, String> {
        let mut current = root;
        for (i, segment) in self.path.iter().enumerate() {
            let here = || {
                let walked = path_text(&self.path[..i]);
                match walked.strip_prefix('.') {
                    Some(field_first) => field_first.to_string(),
                    None => format!("result{walked}"),
                }
            };
            current = match (segment, current) {
                (Segment::Field(f), Value::Object(map)) => map
                    .get(f)
                    .ok_or_else(|| format!("`{}` has no field `{f}`", here()))?,
                (Segment::Field(f), other) => {
                    return Err(format!(
                        "`{}` is {}, not an object, so it has no field `{f}`",
                        here(),
                        kind(other)
                    ));
                }
                (Segment::Index(n), Value::Array(items)) => items.get(*n).ok_or_else(|| {
                    let len = items.len();
                    let noun = if len == 1 { "item" } else { "items" };
                    format!("`{}` has {len} {noun}, so there is no index {n}", here())
                })?,
                (Segment::Index(n), other) => {
                    return Err(format!(
                        "`{}` is {}, not an array, so it has no index {n}",
                        here(),
                        kind(other)
                    ));
                }
            };
        }
        Ok(current)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::StepResult(step) => write!(f, "steps.{step}.result")?,
        }
        f.write_str(&path_text(&self.path))
    }
}

fn path_text(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Field(name) if !name.is_empty() && name.chars().all(is_name_char) => {
                out.push('.');
                out.push_str(name);
            }
            Segment::Field(name) => {
                out.push_str("[\"");
                out.push_str(&name.replace('\\', "\\\\").replace('"', "\\\""));
                out.push_str("\"]");
            }
            Segment::Index(n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A hand-written recursive-descent reader over one `${…}` body.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += c.len_utf8();
        }
        hit
    }

    fn name(&mut self) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn expect_dot(&mut self, after: &str) -> Result<(), String> {
        if self.eat('.') {
            Ok(())
        } else {
            Err(format!("expected `.` after `{after}`"))
        }
    }

    fn reference(&mut self) -> Result<Reference, String> {
        const FORM: &str = "references look like `steps.<id>.result…`";
        let source = match self.name() {
            "steps" => {
                self.expect_dot("steps")?;
                let step = self.name().to_string();
                if step.is_empty() {
                    return Err(format!("expected a step id after `steps.`; {FORM}"));
                }
                self.expect_dot(&format!("steps.{step}"))?;
                match self.name() {
                    "result" => Source::StepResult(step),
                    "" => return Err(format!("expected `result` after `steps.{step}.`")),
                    other => {
                        return Err(format!(
                            "`steps.{step}.{other}` is not supported; only `steps.{step}.result` can be referenced"
                        ));
                    }
                }
            }
            "" => return Err(format!("empty reference; {FORM}")),
            other => return Err(format!("unknown root `{other}`; {FORM}")),
        };
        let mut path = Vec::new();
        loop {
            if self.eat('.') {
                let name = self.name();
                if name.is_empty() {
                    return Err(
                        "expected a field name after `.` (use `[\"…\"]` for other keys)".into(),
                    );
                }
                path.push(Segment::Field(name.to_string()));
            } else if self.eat('[') {
                path.push(self.bracket()?);
            } else {
                return Ok(Reference { source, path });
            }
        }
    }

    /// After `[`: `123]` or `"key"]`.
    fn bracket(&mut self) -> Result<Segment, String> {
        let segment = if self.eat('"') {
            let mut key = String::new();
            loop {
                match self.peek() {
                    None => return Err("unterminated quoted key".into()),
                    Some('"') => break,
                    Some('\\') => {
                        self.pos += 1;
                        match self.peek() {
                            Some(c @ ('"' | '\\')) => key.push(c),
                            _ => {
                                return Err(
                                    "in a quoted key only `\\\"` and `\\\\` are escapes".into()
                                );
                            }
                        }
                    }
                    Some(c) => key.push(c),
                }
                self.pos += self.peek().map_or(0, char::len_utf8);
            }
            self.pos += 1;
            Segment::Field(key)
        } else {
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
            let digits = &self.text[start..self.pos];
            if digits.is_empty() {
                return Err("expected an index or a quoted key after `[`".into());
            }
            Segment::Index(
                digits
                    .parse()
                    .map_err(|_| format!("index {digits} is too large"))?,
            )
        };
        if self.eat(']') {
            Ok(segment)
        } else {
            Err("expected `]`".into())
        }
    }
}

/// A string split into literal text and references.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Ref(Reference),
}

/// Splits a string into pieces; `at` only labels errors.
fn pieces(s: &str, at: &str) -> Result<Vec<Piece>, ReferenceError> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$${") {
            text.push_str("${");
            rest = after;
        } else if let Some(body) = rest.strip_prefix("${") {
            let error = |end: usize, message: String| ReferenceError {
                at: at.to_string(),
                text: rest[..end].to_string(),
                message,
            };
            let Some(close) = closing_brace(body) else {
                return Err(error(rest.len(), "missing closing `}`".into()));
            };
            let reference = Reference::parse(body[..close].trim_matches(' '))
                .map_err(|m| error(close + 3, m))?;
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            out.push(Piece::Ref(reference));
            rest = &body[close + 1..];
        } else {
            text.push('$');
            rest = &rest[1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// The index of the `}` closing a reference body, skipping `}` inside quoted keys.
fn closing_brace(body: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Appends `.key` (or `["key"]`) to a location; no dot at the start.
fn push_key(at: &mut String, key: &str) {
    let text = path_text(&[Segment::Field(key.to_string())]);
    match text.strip_prefix('.') {
        Some(plain) if at.is_empty() => at.push_str(plain),
        _ => at.push_str(&text),
    }
}

/// Calls `f` on every string in `value` with its location (`a.b[2]`).
fn walk<'v>(value: &'v Value, at: &mut String, f: &mut impl FnMut(&'v str, &str)) {
    match value {
        Value::String(s) => f(s, at),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("[{i}]"));
                walk(item, at, f);
                at.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = at.len();
                push_key(at, key);
                walk(item, at, f);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

/// Every reference in `value`, in document order (duplicates kept), or every syntax error.
pub fn references(value: &Value) -> Result<Vec<Reference>, Vec<ReferenceError>> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    walk(value, &mut String::new(), &mut |s, at| {
        if s.contains("${") {
            match pieces(s, at) {
                Ok(p) => found.extend(p.into_iter().filter_map(|p| match p {
                    Piece::Ref(r) => Some(r),
                    Piece::Text(_) => None,
                })),
                Err(e) => errors.push(e),
            }
        }
    });
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

/// Builds a step's arguments: every reference in `arguments` replaced by the value it
/// points to. `lookup` returns a step's stored result (for MCP tools, the `CallToolResult`
/// object with `content`, `structuredContent`…), or `None` if it has none.
pub fn resolve<'a>(
    arguments: &Value,
    lookup: impl Fn(&str) -> Option<&'a Value>,
) -> Result<Value, ResolveError> {
    resolve_with(arguments, lookup, ResolveLimits::default())
}

/// [`resolve`] within `limits`. The size is counted as values are inserted, so arguments
/// that would expand past the limit fail before they are built.
pub fn resolve_with<'a>(
    arguments: &Value,
    lookup: impl Fn(&str) -> Option<&'a Value>,
    limits: ResolveLimits,
) -> Result<Value, ResolveError> {
    let mut r = Resolver {
        lookup,
        limits,
        // What the literal arguments take already.
        used: encoded_len(arguments, usize::MAX).unwrap_or(0),
    };
    r.resolve_at(arguments, &mut String::new(), 0)
}

struct Resolver<F> {
    lookup: F,
    limits: ResolveLimits,
    /// Bytes of JSON the arguments take so far (the literal text, plus every value
    /// inserted in place of a reference).
    used: usize,
}

impl<'a, F: Fn(&str) -> Option<&'a Value>> Resolver<F> {
    /// The value `r` names, after charging its size (and checking its depth at `depth`).
    fn take(&mut self, r: &Reference, depth: usize) -> Result<&'a Value, ResolveError> {
        let v = lookup_ref(r, &self.lookup)?;
        let left = self.limits.max_bytes.saturating_sub(self.used);
        match encoded_len(v, left) {
            Some(n) => self.used += n,
            None => {
                return Err(ResolveError::TooLarge {
                    limit: self.limits.max_bytes,
                    reference: r.to_string(),
                });
            }
        }
        let room = self.limits.max_depth.saturating_sub(depth);
        if baton_core::value::json_depth(v, room) > room {
            return Err(ResolveError::TooDeep {
                limit: self.limits.max_depth,
                reference: r.to_string(),
            });
        }
        Ok(v)
    }

    /// `depth`: how deeply `value` sits in the arguments.
    fn resolve_at(
        &mut self,
        value: &Value,
        at: &mut String,
        depth: usize,
    ) -> Result<Value, ResolveError> {
        Ok(match value {
            Value::String(s) if s.contains('$') => {
                let mut pieces = pieces(s, at)?;
                if let [Piece::Ref(r)] = pieces.as_slice() {
                    return self.take(r, depth).cloned();
                }
                let mut out = String::with_capacity(s.len());
                for piece in pieces.drain(..) {
                    match piece {
                        Piece::Text(t) => out.push_str(&t),
                        // Interpolated text is flat: only its size counts.
                        Piece::Ref(r) => match self.take(&r, 0)? {
                            Value::String(v) => out.push_str(v),
                            other => out.push_str(&other.to_string()),
                        },
                    }
                }
                Value::String(out)
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = at.len();
                    at.push_str(&format!("[{i}]"));
                    let v = self.resolve_at(item, at, depth + 1);
                    at.truncate(len);
                    out.push(v?);
                }
                Value::Array(out)
            }
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (key, item) in map {
                    let len = at.len();
                    push_key(at, key);
                    let v = self.resolve_at(item, at, depth + 1);
                    at.truncate(len);
                    out.insert(key.clone(), v?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
}

/// The length of `v` as compact JSON, or `None` once it exceeds `limit` (the encoding
/// stops there, so a huge value costs no more than the limit to measure).
fn encoded_len(v: &Value, limit: usize) -> Option<usize> {
    struct Counter {
        n: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.n += buf.len();
            if self.n > self.limit {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter { n: 0, limit };
    serde_json::to_writer(&mut c, v).ok().map(|()| c.n)
}

fn lookup_ref<'a>(
    reference: &Reference,
    lookup: &impl Fn(&str) -> Option<&'a Value>,
) -> Result<&'a Value, ResolveError> {
    let Source::StepResult(step) = &reference.source;
    let root = lookup(step).ok_or_else(|| ResolveError::NoResult {
        step: step.clone(),
        reference: reference.to_string(),
    })?;
    reference
        .select(root)
        .map_err(|message| ResolveError::Missing {
            step: step.clone(),
            reference: reference.to_string(),
            message,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_brace_skips_quoted_keys() {
        assert_eq!(closing_brace(r#"steps.a.result["x}y"]}tail"#), Some(21));
        assert_eq!(closing_brace(r#"steps.a.result["x\"}"]}"#), Some(22));
        assert_eq!(closing_brace("steps.a.result"), None);
    }

    #[test]
    fn pieces_split_text_and_references() {
        let p = pieces("a ${steps.x.result} b $${c} $d", "").unwrap();
        assert_eq!(
            p,
            vec![
                Piece::Text("a ".into()),
                Piece::Ref(Reference {
                    source: Source::StepResult("x".into()),
                    path: vec![]
                }),
                Piece::Text(" b ${c} $d".into()),
            ]
        );
    }
}
