//! Baton as an MCP server: every tool of every upstream server, run as a durable task,
//! for every MCP client in use today.
//!
//! Clients differ in what they know of tasks, so one call takes one of three shapes:
//! - 2026-07-28 with the `io.modelcontextprotocol/tasks` extension: the call returns the
//!   task at once; `tasks/get`, `tasks/update`, `tasks/cancel`, `subscriptions/listen`.
//! - 2025-11-25 experimental tasks: `params.task` gives a `CreateTaskResult`; `tasks/get`,
//!   blocking `tasks/result`, `tasks/list`, `tasks/cancel`, `notifications/tasks/status`.
//! - Everything else: the request waits for its task with progress and keep-alives; the
//!   `task_*` orchestration tools let a model follow tasks itself.
//!
//! Layout:
//! - [`protocol`]: JSON-RPC messages, error codes, `_meta` keys, versions.
//! - [`session`]: the era of a request, legacy session ids (which carry their own state,
//!   so any node serves any session), the channel back to the client.
//! - [`state`]: [`McpService`], what every handler shares (engine, upstreams, sessions).
//! - [`dispatch`]: transport-independent dispatch: `initialize`, `server/discover`,
//!   `tools/list`, and the handlers below.
//! - [`errors`], [`results`]: errors on the wire (the one table of `baton_core::error`),
//!   and a finished task as a tool result.
//! - [`calls`]: `tools/call` in its three shapes.
//! - [`tasks`]: the two task wire formats over one Baton task.
//! - [`orchestration`]: the `task_*`, `queue_stats`, `server_list` tools.
//! - [`http`]: Streamable HTTP at `/mcp` (both eras on one endpoint, DNS rebinding
//!   protection, SSE when a request has something to say before its answer).
//! - [`stdio`]: newline-delimited JSON-RPC on stdin/stdout (`baton mcp`), served in-process
//!   or bridged to a running node's `/mcp`.

pub mod calls;
pub mod dispatch;
pub mod errors;
pub mod http;
pub mod orchestration;
pub mod protocol;
pub mod relay;
pub mod results;
pub mod session;
pub mod state;
pub mod stdio;
pub mod tasks;

pub use state::{McpService, McpSettings};
