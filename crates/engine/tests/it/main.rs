//! The engine's integration tests: one binary (one link) for all of them.

mod archive;
mod audit;
mod audit_log;
mod common;
mod engine;
mod keys;
mod schedules;
