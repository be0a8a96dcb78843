//! The backend-neutral half of the stores: the Rust both backends share, by topic.
//!
//! A statement both backends run alike is written once here, generic over the dialect
//! ([`dialect::Dialect`], implemented for `Sqlite` and `Postgres`): its text comes from
//! the topic's `…Sql` trait (`TaskSql`, `InputSql`, `LeaseSql`, `RunSql`, `QueueSql`,
//! `ServerSql`, `PeerSql`, `WorkflowSql`, `SessionSql`, `LogSql`; `schedules` writes
//! its statements once, with `$n` parameters turned into the dialect's), which each backend implements in its own
//! topic module, and the Rust that binds its values and decodes its rows is here.
//!
//! Where the backends need different Rust, not only different SQL (storing tasks,
//! claiming, batch progress and completions, handing leases back, appending events), the
//! topic has a `…Writes` trait that a backend implements on its write transaction
//! ([`dialect::Tx`]: SQLite's writer connection, a PostgreSQL transaction's connection),
//! and the logic around it (rounds, outcomes, events to append) is here, once.
//!
//! Plus what needs no database: row decoding (`rows`), the list filters (`filters`), and
//! the events the writes append (`events`).

pub(crate) mod analytics;
pub(crate) mod archive;
pub(crate) mod cache;
pub(crate) mod claims;
pub(crate) mod dialect;
pub(crate) mod events;
pub(crate) mod filters;
pub(crate) mod input;
pub(crate) mod keys;
pub(crate) mod leases;
pub(crate) mod logs;
pub mod payload;
pub(crate) mod peers;
pub(crate) mod queues;
pub(crate) mod rows;
pub(crate) mod runs;
pub(crate) mod schedules;
pub(crate) mod servers;
pub(crate) mod sessions;
pub(crate) mod tasks;
pub(crate) mod webhooks;
pub(crate) mod workflows;
