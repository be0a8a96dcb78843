//! MCP servers as Baton's upstreams.

pub mod config;
pub mod connection;
pub mod handler;
pub mod process;
pub mod raw;
