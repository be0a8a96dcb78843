//! A task's log: the messages its tool emitted while it ran (an upstream server's
//! `notifications/message`, a built-in tool's own), kept with the task in order, the last
//! lines and bytes of each task only.

use serde::Serialize;
use serde_json::Value;

use crate::{TaskId, Timestamp};

/// The MCP logging levels, least severe first. Anything else is stored as `info`.
pub const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// Longest a logger name is kept, in characters.
const MAX_LOGGER_CHARS: usize = 256;

/// How much of a task's log is kept: the newest lines, at most `lines` of them and
/// `bytes` of data in all (older lines are dropped as new ones arrive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogKeep {
    pub lines: u32,
    pub bytes: u64,
}

impl Default for LogKeep {
    fn default() -> Self {
        LogKeep {
            lines: 1000,
            bytes: 1 << 20,
        }
    }
}

impl LogKeep {
    /// The most data one line keeps: a sixteenth of the whole, at most 64 KiB, at least
    /// 256 bytes.
    pub fn line_bytes(&self) -> usize {
        ((self.bytes / 16).clamp(256, 64 << 10)) as usize
    }
}

/// A line about to be stored, already made storable by [`NewLogLine::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewLogLine {
    pub task_id: TaskId,
    pub attempt: u32,
    pub at: Timestamp,
    pub level: String,
    pub logger: Option<String>,
    /// The message, as JSON text (what the store keeps).
    pub data: String,
}

impl NewLogLine {
    /// Makes a tool's message storable whatever it holds: an unknown level becomes
    /// `info`, NUL characters in the logger name become U+FFFD and the name is cut to 256
    /// characters, and data longer than `keep.line_bytes()` (or nested too deeply to
    /// store) is replaced by `{"truncated": true, "bytes": N, "text": "<its start>"}`.
    pub fn new(
        task_id: TaskId,
        attempt: u32,
        at: Timestamp,
        level: &str,
        logger: Option<&str>,
        data: &Value,
        keep: LogKeep,
    ) -> Self {
        let level = LEVELS
            .iter()
            .find(|l| l.eq_ignore_ascii_case(level))
            .copied()
            .unwrap_or("info")
            .to_string();
        let logger = logger.map(|l| {
            crate::value::storable_text(l)
                .chars()
                .take(MAX_LOGGER_CHARS)
                .collect::<String>()
        });
        let text = data.to_string();
        let max = keep.line_bytes();
        let data = if text.len() <= max && crate::value::check_json(data).is_ok() {
            text
        } else {
            let mut cut = max.saturating_sub(64).min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            serde_json::json!({"truncated": true, "bytes": text.len(), "text": &text[..cut]})
                .to_string()
        };
        NewLogLine {
            task_id,
            attempt,
            at,
            level,
            logger,
            data,
        }
    }
}

/// A stored line.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LogLine {
    /// Its number: increasing in the order lines were stored, across every task.
    pub seq: i64,
    #[schemars(with = "String")]
    pub task_id: TaskId,
    /// The attempt that logged it.
    pub attempt: u32,
    pub at: Timestamp,
    /// `debug`, `info`, `notice`, `warning`, `error`, `critical`, `alert` or `emergency`.
    pub level: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    /// What the tool sent (any JSON).
    pub data: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(level: &str, logger: Option<&str>, data: Value) -> NewLogLine {
        NewLogLine::new(
            TaskId::generate(Timestamp::from_millis(1)),
            1,
            Timestamp::from_millis(2),
            level,
            logger,
            &data,
            LogKeep {
                lines: 10,
                bytes: 4096,
            },
        )
    }

    #[test]
    fn lines_are_made_storable() {
        let l = line("WARNING", Some("a\0b"), json!({"msg": "hi\u{0}"}));
        assert_eq!(l.level, "warning");
        assert_eq!(l.logger.as_deref(), Some("a\u{FFFD}b"));
        // A NUL inside JSON data is escaped in its text, which the store holds as is.
        assert_eq!(l.data, r#"{"msg":"hi\u0000"}"#);
        assert_eq!(line("loud", None, json!(1)).level, "info");
        let long = line("info", Some(&"x".repeat(1000)), json!("y".repeat(10_000)));
        assert_eq!(long.logger.unwrap().chars().count(), 256);
        let data: Value = serde_json::from_str(&long.data).unwrap();
        assert_eq!(data["truncated"], true);
        assert_eq!(data["bytes"], 10_002);
        assert!(long.data.len() <= 256, "{}", long.data.len());
    }
}
