//! What happens to a task when its handler returns: the retry rules.

use std::time::Duration;

use serde_json::Value;

use crate::{EventKind, TaskError, TaskStatus, Timestamp};

/// Exponential backoff with jitter: attempt `n` (1-based, the attempt that just failed)
/// waits `min(max, base · 2^(n-1))`, of which the `jitter` fraction is randomised so that
/// many tasks failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    /// 0.0 = no jitter, 1.0 = anywhere between 0 and the full delay.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.5,
        }
    }
}

impl RetryPolicy {
    /// `rand01` is a uniform sample in `[0, 1)`, passed in to keep this pure.
    pub fn delay(&self, attempt: u32, rand01: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let full = self
            .base
            .checked_mul(1u32 << exp.min(31))
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0) * rand01.clamp(0.0, 1.0);
        full.mul_f64(1.0 - jitter)
    }
}

/// What a handler run ended with.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The tool returned a result (an MCP `CallToolResult`).
    Completed(Value),
    /// The tool failed; `error.retryable` says whether another attempt may help.
    Failed(TaskError),
    /// The run stopped because a client cancelled the task.
    Cancelled,
}

/// The state change a finished run asks the store to make (fenced by the lease token).
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Complete {
        result: Value,
    },
    /// Back to `pending`, to run at `run_at`; `error` is kept as the last error.
    Retry {
        run_at: Timestamp,
        error: TaskError,
    },
    /// Final failure: the task is dead-lettered (kept, retryable by hand).
    Fail {
        error: TaskError,
    },
    Cancel,
}

impl Transition {
    pub fn status(&self) -> TaskStatus {
        match self {
            Transition::Complete { .. } => TaskStatus::Completed,
            Transition::Retry { .. } => TaskStatus::Pending,
            Transition::Fail { .. } => TaskStatus::Failed,
            Transition::Cancel => TaskStatus::Cancelled,
        }
    }

    pub fn event_kind(&self) -> EventKind {
        match self {
            Transition::Complete { .. } => EventKind::Completed,
            Transition::Retry { .. } => EventKind::RetryScheduled,
            Transition::Fail { .. } => EventKind::Failed,
            Transition::Cancel => EventKind::Cancelled,
        }
    }
}

/// Decides the transition for a run that ended with `outcome` on attempt `attempt` of
/// `max_attempts`.
pub fn decide(
    outcome: Outcome,
    attempt: u32,
    max_attempts: u32,
    policy: &RetryPolicy,
    now: Timestamp,
    rand01: f64,
) -> Transition {
    match outcome {
        Outcome::Completed(result) => Transition::Complete { result },
        Outcome::Cancelled => Transition::Cancel,
        Outcome::Failed(error) if error.retryable && attempt < max_attempts => Transition::Retry {
            run_at: now.saturating_add(policy.delay(attempt, rand01)),
            error,
        },
        Outcome::Failed(mut error) => {
            if error.retryable {
                error.message = format!(
                    "{} (gave up after {attempt} of {max_attempts} attempts)",
                    error.message
                );
            }
            Transition::Fail { error }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            jitter: 0.5,
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            jitter: 0.0,
            ..policy()
        };
        assert_eq!(p.delay(1, 0.7), Duration::from_millis(100));
        assert_eq!(p.delay(2, 0.7), Duration::from_millis(200));
        assert_eq!(p.delay(4, 0.7), Duration::from_millis(800));
        assert_eq!(p.delay(5, 0.7), Duration::from_millis(1000));
        assert_eq!(p.delay(200, 0.7), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = policy();
        assert_eq!(p.delay(2, 0.0), Duration::from_millis(200));
        assert_eq!(p.delay(2, 1.0), Duration::from_millis(100));
        let mid = p.delay(2, 0.5);
        assert!(mid > Duration::from_millis(100) && mid < Duration::from_millis(200));
    }

    #[test]
    fn retryable_errors_retry_until_attempts_run_out() {
        let now = Timestamp::from_millis(10_000);
        let err = TaskError::new("upstream_unavailable", "connection reset", true);
        match decide(Outcome::Failed(err.clone()), 1, 3, &policy(), now, 0.0) {
            Transition::Retry { run_at, error } => {
                assert_eq!(run_at, Timestamp::from_millis(10_100));
                assert_eq!(error, err);
            }
            other => panic!("expected retry, got {other:?}"),
        }
        match decide(Outcome::Failed(err), 3, 3, &policy(), now, 0.0) {
            Transition::Fail { error } => {
                assert!(error.message.contains("gave up after 3 of 3 attempts"))
            }
            other => panic!("expected final failure, got {other:?}"),
        }
    }

    #[test]
    fn non_retryable_errors_fail_at_once() {
        let err = TaskError::new("tool_error", "bad sql", false);
        let t = decide(
            Outcome::Failed(err.clone()),
            1,
            5,
            &policy(),
            Timestamp::ZERO,
            0.3,
        );
        assert_eq!(t, Transition::Fail { error: err });
        assert_eq!(t.status(), TaskStatus::Failed);
    }

    #[test]
    fn completion_and_cancellation_pass_through() {
        let t = decide(
            Outcome::Completed(serde_json::json!({"content": []})),
            1,
            1,
            &policy(),
            Timestamp::ZERO,
            0.0,
        );
        assert_eq!(t.status(), TaskStatus::Completed);
        let c = decide(Outcome::Cancelled, 1, 1, &policy(), Timestamp::ZERO, 0.0);
        assert_eq!(c, Transition::Cancel);
        assert_eq!(c.event_kind(), EventKind::Cancelled);
    }
}
