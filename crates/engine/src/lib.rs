//! Baton's task engine: the one service API that REST, MCP and the CLI are thin adapters
//! over.
//!
//! Layout (no file imports one that imports it back):
//! - [`engine`]: [`Engine`], the service API (submit, get, list, cancel, retry, input,
//!   wait, events, queues, peers, estimates).
//! - `lifecycle`: [`Engine::start`] wires the loops below; [`Engine::shutdown`] drains.
//! - `inner`: the state one process shares between the API and its loops (data only);
//!   `publisher`: publishing committed events; `runs`: the runs of this node by task and
//!   lease token, and their buffered progress.
//! - [`worker`]: the worker pool: claims under a lease, runs tools with a cancellation
//!   token and a timeout, heartbeats, finishes fenced.
//! - [`maintenance`]: lease rescue, retention, the active-task count.
//! - [`archive`]: finished tasks and workflows written to object storage ([`objects`])
//!   before retention deletes them, read back by id, exported.
//! - [`cluster`]: other processes sharing the store: their committed events, presence,
//!   the clock they agree on, maintenance run by one of them at a time.
//! - [`workflow`]: workflows as DAGs of tasks (`api`, `views`, `coordinator`).
//! - [`cache`]: the result cache: which tools are cached, call keys, settling the calls
//!   that wait for an identical one.
//! - [`batch`]: group commit — concurrent writes of one kind share a transaction.
//! - [`hub`]: live event fan-out to SSE streams and waiters.
//! - [`tools`]: the [`tools::ToolProvider`] trait, the catalog with argument validation,
//!   the [`tools::ToolContext`] a running tool gets, and the built-in `baton__*` tools.
//! - [`views`] and [`page`]: what every front door shows (one task view, one peer view,
//!   …, with generated JSON Schemas) and how lists page and requests wait.
//! - [`analytics`]: counts, percentiles, cost and series over a window of tasks.
//! - [`metrics`]: every metric a node exports, declared once, recorded through the
//!   `metrics` facade.
//! - [`trace`]: the W3C trace context a task keeps, so its runs join its caller's trace.
//! - [`config`], [`clock`], [`error`].
//!
//! Invariants: the engine never writes SQL (only `baton-store` does); every state change
//! goes through one store call that appends its events, and the engine publishes exactly
//! the events the store returns.

pub mod analytics;
pub mod archive;
pub mod audit;
pub mod batch;
pub mod cache;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod error;
pub mod hub;
mod inner;
pub mod keys;
mod lifecycle;
pub mod maintenance;
pub mod metrics;
pub mod objects;
pub mod page;
pub mod payloads;
mod publisher;
pub mod reads;
mod runs;
pub mod schedules;
pub mod sessions;
pub mod tools;
pub mod trace;
pub mod views;
pub mod webhooks;
pub mod worker;
pub mod workflow;

pub use config::EngineConfig;
pub use engine::{Engine, Submitted};
pub use error::{EngineError, WireError};
