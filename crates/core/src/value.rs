//! What the store can hold, checked where values enter.
//!
//! Everything Baton stores must read back: a value the store rejects would fail the
//! write (and, in a group commit, the writes batched with it), and a value it accepts but
//! cannot read back would break every listing that includes it. So:
//!
//! - **Identifiers** a client chooses (idempotency keys, names) must not hold a NUL
//!   character, which PostgreSQL `text` cannot store: [`check_text`] refuses them at the
//!   door (HTTP 400 / JSON-RPC -32602).
//! - **Free text** Baton did not choose (a tool's error or progress message) cannot be
//!   refused, so it is stored with NUL replaced by U+FFFD: [`storable_text`].
//! - **JSON** (arguments, metadata, results, input, references resolved from results) is
//!   stored as JSON text, where NUL is an escape and harmless, but it must not nest deeper
//!   than [`MAX_JSON_DEPTH`]: JSON parsers (serde's included) refuse very deep documents,
//!   and a row that cannot be parsed back cannot be shown. [`check_json`] enforces it.

use std::borrow::Cow;

use serde_json::Value;

/// The deepest nesting of arrays and objects a stored JSON value may have. Real tool
/// arguments and results nest a handful of levels; this leaves room for the envelopes
/// Baton wraps values in (events, views, JSON-RPC) under parsers' usual limit of 128.
pub const MAX_JSON_DEPTH: usize = 64;

/// How deeply `value` nests (a scalar is 0, `[]` and `{}` are 1). Stops counting at
/// `limit + 1`, so the walk is cheap even for a value far deeper than allowed.
pub fn json_depth(value: &Value, limit: usize) -> usize {
    // Iterative: a value built in memory (not parsed) may be deeper than the stack.
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let depth = depth + 1;
        deepest = deepest.max(depth);
        if deepest > limit {
            return deepest;
        }
        stack.extend(children.map(|c| (c, depth)));
    }
    deepest
}

/// `Err` names the problem when `value` nests deeper than [`MAX_JSON_DEPTH`].
pub fn check_json(value: &Value) -> Result<(), String> {
    let depth = json_depth(value, MAX_JSON_DEPTH);
    if depth > MAX_JSON_DEPTH {
        return Err(format!(
            "nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects, which Baton does not store"
        ));
    }
    Ok(())
}

/// `Err` names the problem when an identifier holds a character the store cannot hold.
pub fn check_text(text: &str) -> Result<(), String> {
    if text.contains('\0') {
        return Err("must not contain a NUL character (U+0000)".into());
    }
    Ok(())
}

/// Free text as it can be stored: NUL characters become U+FFFD.
pub fn storable_text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(depth: usize) -> Value {
        let mut v = json!("leaf");
        for i in 0..depth {
            v = if i % 2 == 0 {
                json!([v])
            } else {
                json!({"k": v})
            };
        }
        v
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(json_depth(&json!(1), 10), 0);
        assert_eq!(json_depth(&json!([]), 10), 1);
        assert_eq!(json_depth(&json!({"a": [1, {"b": null}], "c": 2}), 10), 3);
        assert_eq!(json_depth(&nested(64), 100), 64);
        // The walk stops once past the limit.
        assert_eq!(json_depth(&nested(1_000), 64), 65);
    }

    #[test]
    fn json_deeper_than_the_limit_is_refused() {
        assert!(check_json(&nested(MAX_JSON_DEPTH)).is_ok());
        let e = check_json(&nested(MAX_JSON_DEPTH + 1)).unwrap_err();
        assert!(e.contains("64 levels"), "{e}");
    }

    #[test]
    fn nul_is_refused_in_identifiers_and_replaced_in_text() {
        assert!(check_text("key-1 é ✓").is_ok());
        assert!(check_text("a\0b").unwrap_err().contains("NUL"));
        assert_eq!(storable_text("x\0y\0"), "x\u{FFFD}y\u{FFFD}");
        assert!(matches!(storable_text("plain"), Cow::Borrowed(_)));
    }
}
