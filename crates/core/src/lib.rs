//! Baton's domain model, with no I/O.
//!
//! Layout:
//! - [`id`]: unguessable, time-ordered task ids.
//! - [`time`]: the millisecond [`Timestamp`] every layer agrees on.
//! - [`task`]: [`Task`], its [`TaskStatus`] state machine, priorities and errors.
//! - [`event`]: the append-only event log entries.
//! - [`submit`]: turning a client's submit request into a validated [`task::NewTask`].
//! - [`policy`]: retries with exponential backoff and jitter, and what a handler outcome
//!   does to a task.
//! - [`principal`]: who a request acts as (a placeholder until authentication).
//! - [`auth`]: identities, scopes, API key secrets (only their hash is kept), rates.
//! - [`tool`]: qualified tool names (`server__tool`).
//! - [`error`]: the small [`ErrorCode`] enum every front door maps to its wire format.
//! - [`value`]: what the store can hold (no NUL in identifiers, bounded JSON depth),
//!   checked where values enter.
//!
//! Nothing here touches a clock, a file or a socket: callers pass `now` in, which keeps
//! the rules testable with plain values.

pub mod auth;
pub mod error;
pub mod event;
pub mod id;
pub mod log;
pub mod policy;
pub mod principal;
pub mod submit;
pub mod task;
pub mod time;
pub mod tool;
pub mod value;

pub use error::ErrorCode;
pub use event::{EventKind, TaskEvent};
pub use id::TaskId;
pub use task::{Task, TaskError, TaskStatus};
pub use time::Timestamp;
