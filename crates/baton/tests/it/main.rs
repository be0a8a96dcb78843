//! The black-box tests of the `baton` binary: the real binary on real ports, its real
//! peers (MCP servers and clients, PostgreSQL). One test binary, so one link, for all of
//! them; one module per theme.

mod api;
mod archive;
mod bad_input;
mod cache;
mod chaos;
mod cluster;
mod common;
mod discovery;
mod faults;
mod flow_control;
mod gateway;
mod mcp_clients;
mod mcp_protocol;
mod observability;
mod schedules;
mod security;
mod upstreams;
mod webhooks;
mod workflows;
