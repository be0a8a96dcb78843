//! A Baton node.
//!
//! - [`config`]: typed configuration, layered defaults → TOML file → `BATON_*` environment
//!   → command-line flags, parsed once with unknown keys rejected.
//! - [`app`]: [`App::build`] opens the data directory, the store and the engine and binds
//!   the listener; [`App::run_until_stopped`] serves until a shutdown signal and then
//!   drains gracefully. Tests start the real thing on port 0.
//! - [`rest`]: the `/v1` REST API, health endpoints and the SSE event stream: thin adapters
//!   over [`baton_engine::Engine`].
//! - [`error`]: the one place engine errors become HTTP responses.
//! - [`openapi`]: the OpenAPI 3.1 document (`GET /openapi.json`), its schemas generated
//!   from the handlers' types.
//! - [`metrics`]: `GET /metrics` (Prometheus), the recorder and per-route HTTP timing.
//! - [`ui`]: the dashboard at `/ui`, embedded: plain JavaScript over the REST API.
//! - [`listener`]: the accept loop with connection limits and timeouts (slow or idle
//!   clients cannot hold connections for ever).
//! - [`guard`]: the browser guard (Host, Origin, JSON bodies) in front of every route, so
//!   no web page can drive a node.
//! - [`auth`]: credentials (API keys, JWTs), scopes, tenancy across principals, rate
//!   limits and the audit trail, for every route after the guard.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod guard;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod rest;
pub mod routes;
pub mod tls;
pub mod ui;

pub use app::App;
pub use config::Config;
