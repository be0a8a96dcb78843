//! The node's HTTP contract, router-level: requests go through the real router (browser
//! guard, extractors, handlers, engine) with `tower::ServiceExt::oneshot`, on a real
//! SQLite store, without a socket. Answers are snapshot-tested with ids and times
//! redacted, so a change to what clients see is a reviewed diff.

mod auth;
mod contract;
mod node;
