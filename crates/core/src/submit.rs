//! A client's request to run a tool, and its validation into a [`NewTask`].
//!
//! Field types are checked by serde (the edge reports the failing path); ranges and
//! cross-field rules are checked here, so every front door (REST, MCP, CLI) applies the
//! same rules and the same messages.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::task::{NewTask, priority};
use crate::tool::validate_name;
use crate::{ErrorCode, TaskId, Timestamp};

/// Longest accepted delay or distance of `run_at` into the future.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);
/// Longest accepted per-task timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most attempts a task may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Shortest time to live a task may ask for.
pub const MIN_TTL: Duration = Duration::from_secs(1);

/// When a task is due, from `run_at` (RFC 3339; a past time means now) or `delay_ms`
/// (from `now`); `None` when neither is given.
pub fn due_time(
    run_at: Option<&str>,
    delay_ms: Option<u64>,
    now: Timestamp,
) -> Result<Option<Timestamp>, InvalidRequest> {
    Ok(Some(match (run_at, delay_ms) {
        (Some(_), Some(_)) => {
            return Err(InvalidRequest::new(
                "run_at",
                "give either run_at or delay_ms, not both",
            ));
        }
        (Some(s), None) => {
            let at = Timestamp::parse_rfc3339(s).map_err(|m| InvalidRequest::new("run_at", m))?;
            if at.millis_since(now) > MAX_DELAY.as_millis() as u64 {
                return Err(InvalidRequest::new("run_at", "is more than 366 days ahead"));
            }
            at.max(now)
        }
        (None, Some(ms)) => {
            if u128::from(ms) > MAX_DELAY.as_millis() {
                return Err(InvalidRequest::new(
                    "delay_ms",
                    format!("{ms} is more than 366 days"),
                ));
            }
            now.saturating_add(Duration::from_millis(ms))
        }
        (None, None) => return Ok(None),
    }))
}

/// A change to a pending task: the body of `PATCH /v1/tasks/{id}`, the arguments of the
/// MCP tool `task_priority` (with its `task_id`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskUpdate {
    /// The new priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// When it is due: RFC 3339 (a past time means now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<String>,
    /// Or: due this many milliseconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

impl TaskUpdate {
    /// The new priority and due time; at least one must be given.
    pub fn resolve(
        &self,
        now: Timestamp,
    ) -> Result<(Option<i32>, Option<Timestamp>), InvalidRequest> {
        let run_at = due_time(self.run_at.as_deref(), self.delay_ms, now)?;
        if self.priority.is_none() && run_at.is_none() {
            return Err(InvalidRequest::new(
                "priority",
                "nothing to change: give priority, run_at or delay_ms",
            ));
        }
        Ok((self.priority.map(|p| p.0), run_at))
    }
}

/// A tool call to run as a task: the body of `POST /v1/tasks`, the arguments of the MCP
/// tool `task_submit`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Qualified tool name, e.g. `baton__sleep`.
    pub tool: String,
    /// The tool's arguments (a JSON object), checked against its input schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub arguments: Option<Value>,
    /// Queue name (`[a-z0-9_.-]`); the default queue when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Do not start before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<String>,
    /// Do not start before this many milliseconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Longest an attempt may run, in milliseconds (at most 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Attempts in all, 1 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The same key (per principal) names the same task: a resubmission returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Free-form labels kept with the task (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub metadata: Option<Value>,
    /// Keep the task at most this many milliseconds from its creation (at least 1,000):
    /// once it has finished and its time is up it may be deleted. The node's retention
    /// (counted from the finish) applies when it is shorter; a running task is never
    /// deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Claims rotate between groups within a priority: a group is the principal and
    /// this key (e.g. a tenant or user id; 1 to 200 characters), so one group's backlog
    /// does not hold up another's tasks. Without it, the principal alone is the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    /// Where to POST one webhook-style callback (`webhook-id` and `webhook-timestamp`
    /// headers, unsigned) when the task ends: completed, failed or cancelled. An `http`
    /// or `https` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// For a tool the node caches: `use` (the default) takes a fresh stored result of the
    /// same call, or waits for an identical call in flight; `refresh` calls the tool and
    /// stores its result as the newest; `bypass` calls the tool and leaves the cache
    /// alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheMode>,
}

/// What a submission does with the result cache (see [`SubmitRequest::cache`]).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    #[default]
    Use,
    Refresh,
    Bypass,
}

/// `"low" | "normal" | "high"` or an integer in `0..=100` (higher runs first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority(pub i32);

impl schemars::JsonSchema for Priority {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Priority".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`low`, `normal`, `high`, or 0 to 100 (higher runs first).",
            "oneOf": [
                {"type": "string", "enum": ["low", "normal", "high"]},
                {"type": "integer", "minimum": priority::MIN, "maximum": priority::MAX}
            ]
        })
    }
}

impl Serialize for Priority {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.0)
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const EXPECTED: &str = "`low`, `normal`, `high` or an integer from 0 to 100";
        impl Visitor<'_> for V {
            type Value = Priority;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Priority, E> {
                priority::from_name(v).map(Priority).ok_or_else(|| {
                    E::custom(format!("unknown priority `{v}`, expected {EXPECTED}"))
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Priority, E> {
                if (i64::from(priority::MIN)..=i64::from(priority::MAX)).contains(&v) {
                    Ok(Priority(v as i32))
                } else {
                    Err(E::custom(format!(
                        "priority {v} is out of range, expected {EXPECTED}"
                    )))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Priority, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Priority, E> {
                Err(E::custom(format!(
                    "priority {v} is not an integer, expected {EXPECTED}"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// Server-side defaults and limits applied to every submission.
#[derive(Debug, Clone)]
pub struct SubmitDefaults {
    pub queue: String,
    pub max_attempts: u32,
    pub timeout: Option<Duration>,
}

impl Default for SubmitDefaults {
    fn default() -> Self {
        SubmitDefaults {
            queue: "default".into(),
            max_attempts: 3,
            timeout: None,
        }
    }
}

/// A submission that breaks a rule: `field` names the offending part of the request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidRequest {
    pub field: String,
    pub message: String,
}

impl InvalidRequest {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }
}

impl SubmitRequest {
    pub fn new(tool: impl Into<String>, arguments: Value) -> Self {
        SubmitRequest {
            tool: tool.into(),
            arguments: Some(arguments),
            ..Default::default()
        }
    }

    /// Checks ranges and cross-field rules and fills in defaults. Whether the tool exists
    /// and whether the arguments fit its schema is the engine's business (it knows the
    /// catalog).
    pub fn validate(
        self,
        owner: &str,
        defaults: &SubmitDefaults,
        now: Timestamp,
    ) -> Result<NewTask, InvalidRequest> {
        if self.tool.is_empty() {
            return Err(InvalidRequest::new("tool", "must not be empty"));
        }
        if self.tool.len() > 256 {
            return Err(InvalidRequest::new("tool", "is longer than 256 characters"));
        }
        let arguments = match self.arguments {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v,
            Some(other) => {
                return Err(InvalidRequest::new(
                    "arguments",
                    format!("must be a JSON object, got {}", json_type(&other)),
                ));
            }
        };
        crate::value::check_json(&arguments).map_err(|m| InvalidRequest::new("arguments", m))?;
        let queue = match self.queue {
            Some(q) => {
                validate_name("queue", &q, &['_', '.'])
                    .map_err(|m| InvalidRequest::new("queue", m))?;
                q
            }
            None => defaults.queue.clone(),
        };
        let run_at = due_time(self.run_at.as_deref(), self.delay_ms, now)?.unwrap_or(now);
        let timeout_ms = match self.timeout_ms {
            Some(0) => return Err(InvalidRequest::new("timeout_ms", "must be at least 1")),
            Some(ms) if u128::from(ms) > MAX_TIMEOUT.as_millis() => {
                return Err(InvalidRequest::new(
                    "timeout_ms",
                    format!("{ms} is more than 7 days ({} ms)", MAX_TIMEOUT.as_millis()),
                ));
            }
            Some(ms) => Some(ms),
            None => defaults.timeout.map(|d| d.as_millis() as u64),
        };
        let max_attempts = match self.max_attempts {
            Some(0) => return Err(InvalidRequest::new("max_attempts", "must be at least 1")),
            Some(n) if n > MAX_ATTEMPTS => {
                return Err(InvalidRequest::new(
                    "max_attempts",
                    format!("{n} is more than {MAX_ATTEMPTS}"),
                ));
            }
            Some(n) => n,
            None => defaults.max_attempts,
        };
        let idempotency_key = match self.idempotency_key {
            Some(k) => {
                check_idempotency_key(&k)?;
                Some(k)
            }
            None => None,
        };
        let metadata = match self.metadata {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => {
                crate::value::check_json(&v).map_err(|m| InvalidRequest::new("metadata", m))?;
                Some(v)
            }
            Some(other) => {
                return Err(InvalidRequest::new(
                    "metadata",
                    format!("must be a JSON object, got {}", json_type(&other)),
                ));
            }
        };
        let group_key = match self.group_key {
            Some(k) if k.is_empty() || k.chars().count() > 200 => {
                return Err(InvalidRequest::new(
                    "group_key",
                    "must be 1 to 200 characters",
                ));
            }
            Some(k) => {
                crate::value::check_text(&k).map_err(|m| InvalidRequest::new("group_key", m))?;
                Some(k)
            }
            None => None,
        };
        let expires_at = match self.ttl_ms {
            Some(ms) if u128::from(ms) < MIN_TTL.as_millis() => {
                return Err(InvalidRequest::new(
                    "ttl_ms",
                    format!("{ms} is less than {} ms", MIN_TTL.as_millis()),
                ));
            }
            Some(ms) => Some(now.saturating_add(Duration::from_millis(ms))),
            None => None,
        };
        Ok(NewTask {
            id: TaskId::generate(now),
            tool: self.tool,
            arguments,
            queue,
            priority: self.priority.map_or(priority::NORMAL, |p| p.0),
            max_attempts,
            run_at,
            timeout_ms,
            idempotency_key,
            owner: owner.to_string(),
            parent_id: None,
            step: None,
            metadata,
            created_at: now,
            expires_at,
            trace_parent: None,
            group_key,
            callback_url: self.callback_url,
            cache: None,
        })
    }
}

/// `object`, `array`, `string`… for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An idempotency key (of a task or a workflow): 1 to 255 characters of text the store
/// can keep.
pub fn check_idempotency_key(k: &str) -> Result<(), InvalidRequest> {
    if k.is_empty() || k.len() > 255 {
        return Err(InvalidRequest::new(
            "idempotency_key",
            "must be 1 to 255 characters",
        ));
    }
    crate::value::check_text(k).map_err(|m| InvalidRequest::new("idempotency_key", m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<SubmitRequest, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
    }

    fn validate(v: Value) -> Result<NewTask, InvalidRequest> {
        parse(v)
            .unwrap()
            .validate("anonymous", &SubmitDefaults::default(), now())
    }

    #[test]
    fn defaults_fill_in() {
        let t = validate(json!({"tool": "baton__echo"})).unwrap();
        assert_eq!(t.arguments, json!({}));
        assert_eq!(t.queue, "default");
        assert_eq!(t.priority, priority::NORMAL);
        assert_eq!(t.max_attempts, 3);
        assert_eq!(t.run_at, now());
    }

    #[test]
    fn priorities_by_name_and_number() {
        assert_eq!(
            validate(json!({"tool":"t","priority":"high"}))
                .unwrap()
                .priority,
            75
        );
        assert_eq!(
            validate(json!({"tool":"t","priority":7})).unwrap().priority,
            7
        );
        let e = parse(json!({"tool":"t","priority":"urgent"})).unwrap_err();
        assert!(e.contains("unknown priority `urgent`"), "{e}");
        let e = parse(json!({"tool":"t","priority":1000})).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = parse(json!({"tool":"t","priority":-1})).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (json!({"tool":""}), "tool"),
            (json!({"tool":"t","arguments":[1]}), "arguments"),
            (json!({"tool":"t","queue":"Bad Queue"}), "queue"),
            (json!({"tool":"t","timeout_ms":0}), "timeout_ms"),
            (json!({"tool":"t","timeout_ms":u64::MAX}), "timeout_ms"),
            (json!({"tool":"t","max_attempts":0}), "max_attempts"),
            (json!({"tool":"t","max_attempts":1000}), "max_attempts"),
            (json!({"tool":"t","delay_ms":u64::MAX}), "delay_ms"),
            (json!({"tool":"t","run_at":"tomorrow"}), "run_at"),
            (
                json!({"tool":"t","run_at":"2030-01-01T00:00:00Z","delay_ms":5}),
                "run_at",
            ),
            (json!({"tool":"t","idempotency_key":""}), "idempotency_key"),
            (json!({"tool":"t","metadata":"x"}), "metadata"),
            (
                json!({"tool":"t","idempotency_key":"a\u{0}b"}),
                "idempotency_key",
            ),
        ];
        for (req, field) in cases {
            let err = validate(req.clone()).unwrap_err();
            assert_eq!(err.field, field, "{req}: {err}");
        }
    }

    #[test]
    fn values_too_deep_to_store_are_refused() {
        let mut deep = json!(1);
        for _ in 0..=crate::value::MAX_JSON_DEPTH {
            deep = json!({ "k": deep });
        }
        for (req, field) in [
            (json!({"tool": "t", "arguments": deep}), "arguments"),
            (json!({"tool": "t", "metadata": deep}), "metadata"),
        ] {
            let err = validate(req).unwrap_err();
            assert_eq!(err.field, field);
            assert!(err.message.contains("deeper than 64"), "{err}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = parse(json!({"tool":"t","argumnets":{}})).unwrap_err();
        assert!(e.contains("unknown field `argumnets`"), "{e}");
    }

    #[test]
    fn delays_move_run_at() {
        let t = validate(json!({"tool":"t","delay_ms":5000})).unwrap();
        assert_eq!(t.run_at, now().saturating_add(Duration::from_secs(5)));
        // A run_at in the past means "now".
        let t = validate(json!({"tool":"t","run_at":"2000-01-01T00:00:00Z"})).unwrap();
        assert_eq!(t.run_at, now());
        let t = validate(json!({"tool":"t","run_at":"2026-01-01T01:00:00+01:00"})).unwrap();
        assert_eq!(t.run_at, now());
    }
}
