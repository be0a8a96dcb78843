//! The REST API under `/v1`, plus `/healthz` and `/readyz` (the routes are assembled in
//! [`crate::routes`]).
//!
//! Handlers parse and check the request, call one [`Engine`] method and shape the
//! response; they hold no logic of their own. Every error body is
//! `{"error": {"code", "message"}}` (see [`crate::error`]).

pub mod extract;
pub mod health;
pub mod keys;
pub mod queues;
pub mod schedules;
pub mod servers;
pub mod sse;
pub mod tasks;
pub mod views;
pub mod webhooks;
pub mod workflows;

use baton_engine::Engine;
use tokio_util::sync::CancellationToken;

/// The principal of requests on a node that asks for no credentials and of requests that
/// name none (see [`crate::auth`]). Every read and write is confined to the caller's
/// principal: another principal's tasks are indistinguishable from missing ones.
pub use baton_core::principal::ANONYMOUS;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// Cancelled when the node starts shutting down: long polls return and SSE streams
    /// end so that the listener can drain.
    pub shutdown: CancellationToken,
    pub upstreams: std::sync::Arc<baton_upstream::Upstreams>,
    pub mcp: std::sync::Arc<baton_mcp::McpService>,
    /// Whether `POST /v1/servers` may register a stdio server (`upstream.allow_runtime_commands`).
    pub allow_runtime_commands: bool,
}
