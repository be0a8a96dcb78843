//! Baton's task engine: the one service API that REST, MCP and the CLI are thin adapters
//! over.
//!
//! Layout:
//! - [`engine`]: [`Engine`], the service API (submit, get, list, cancel, retry, wait,
//!   events, queues) and its start/shutdown.
//! - [`worker`]: the in-process worker pool: claims tasks under a lease, runs their tool
//!   with a cancellation token, heartbeats, reports progress, finishes fenced.
//! - [`maintenance`]: lease rescue, retention, the active-task count.
//! - [`cluster`]: other processes sharing the store: their committed events, presence
//!   (peers), and maintenance run by one of them at a time.
//! - [`batch`]: group commit — concurrent writes of one kind share a transaction.
//! - [`hub`]: live event fan-out to SSE streams and waiters.
//! - [`tools`]: the [`tools::ToolProvider`] trait, the catalog with argument validation,
//!   and the built-in `baton__*` tools.
//! - [`config`], [`clock`], [`error`].
//!
//! Invariants: the engine never writes SQL (only `baton-store` does); every state change
//! goes through one store call that appends its events, and the engine publishes exactly
//! the events the store returns.

pub mod batch;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod error;
pub mod hub;
pub mod maintenance;
pub mod tools;
pub mod worker;
pub mod workflow;

pub use config::EngineConfig;
pub use engine::{Engine, Submitted};
pub use error::EngineError;
