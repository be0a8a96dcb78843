//! MCP servers as Baton's upstreams.
//!
//! - [`config`]: a server's definition (`[[servers]]`, `POST /v1/servers`).
//! - [`manager`]: [`Upstreams`], every server of a node; registers each server (and each
//!   group of replicas) as a tool provider in the engine's catalog.
//! - [`server`]: one server's supervisor (connect, reconnect with backoff, health checks,
//!   circuit breaker, tool refresh) and its tool provider.
//! - [`connection`]: one rmcp client session over stdio or Streamable HTTP.
//! - `http_client`: the HTTP client of Streamable HTTP sessions (trace context as a
//!   header).
//! - [`call`]: running a tool call as a plain call, a 2026-07-28 extension task or a
//!   2025-11-25 task, resumable from a checkpoint.
//! - [`handler`]: the rmcp client handler (progress, sampling and elicitation relayed,
//!   list changes).
//! - [`relay`]: resources, prompts and completion forwarded; servers' change notices.
//! - [`raw`]: the raw protocol fields the SDK's typed model drops.
//! - [`process`]: child process groups; no orphans.
//! - [`group`]: replicas behind one name.
//! - [`secrets`]: env and header values sealed at rest, references resolved per
//!   connection, owner-only data files.
//! - [`redact`]: credentials hidden in what callers see (args, URLs, messages).

pub mod call;
pub mod config;
pub mod connection;
pub mod group;
pub mod handler;
mod http_client;
pub mod manager;
pub mod process;
pub mod raw;
pub mod redact;
mod registration;
pub mod relay;
pub mod secrets;
pub mod server;

pub use config::ServerConfig;
pub use manager::{UpstreamError, Upstreams};
pub use secrets::{Secrets, SecretsConfig, StoreScope};
pub use server::{HealthChange, Origin, Server, ServerStatus, Settings};
