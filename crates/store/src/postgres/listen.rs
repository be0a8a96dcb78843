//! The change feed ([`Store::listen`](crate::Store::listen)) over LISTEN/NOTIFY.
//!
//! The transaction appending events also announces them (`notify_events`), so other
//! processes hear of exactly what committed, when it committed. The channel is
//! `baton_` + md5 of the schema; a payload is `origin|[events…]`, the origin being a
//! random id per store set on its pooled connections (`baton.origin`), which lets a
//! process skip its own notifications. Events are split into payloads under
//! PostgreSQL's 8000-byte limit, and an event too big for one travels as a
//! `{"fetch": [task_id, seq]}` stub that the receiver reads back.

use std::time::Duration;

use baton_core::{TaskEvent, TaskId};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use tokio::sync::mpsc;

use super::error::db_err;
use crate::shared::rows::decode_err;
use crate::shared::tasks::task_events;
use crate::{RemoteChange, StoreResult};

/// The session setting that tags a connection's notifications with its store's origin.
pub(super) const ORIGIN_SETTING: &str = "baton.origin";

/// NOTIFY payloads must stay under 8000 bytes; the origin tag takes a few.
const MAX_PAYLOAD: usize = 7900;

/// The channel events are announced on: one per schema, so deployments in different
/// schemas of one database do not hear each other (md5 keeps it under 63 characters).
macro_rules! channel {
    () => {
        "'baton_' || md5(current_schema())"
    };
}

// The statements.

const CHANNEL: &str = concat!("SELECT ", channel!());

const NOTIFY: &str = concat!(
    "SELECT pg_notify(",
    channel!(),
    ", coalesce(current_setting('baton.origin', true), '') || '|' || p) FROM unnest($1::text[]) AS p"
);

/// Announces events to the other processes sharing the database, inside the writing
/// transaction. An event too large for a notification travels as a reference the
/// listener reads back.
pub(super) async fn notify_events(c: &mut PgConnection, events: &[TaskEvent]) -> StoreResult<()> {
    let mut payloads: Vec<String> = Vec::new();
    let mut current = String::from("[");
    for e in events {
        let mut item = serde_json::to_string(e).map_err(decode_err)?;
        if item.len() + 2 > MAX_PAYLOAD - 32 {
            item = serde_json::json!({"fetch": [e.task_id, e.seq]}).to_string();
        }
        if current.len() + item.len() + 2 > MAX_PAYLOAD - 32 {
            current.push(']');
            payloads.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&item);
    }
    if current.len() > 1 {
        current.push(']');
        payloads.push(current);
    }
    sqlx::query(NOTIFY)
        .bind(payloads)
        .execute(&mut *c)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// One announced event: in full, or a reference to read back.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Announced {
    Fetch { fetch: (TaskId, i64) },
    Event(TaskEvent),
}

/// What the listener of a store needs of it.
pub(super) struct Feed {
    /// The store's pool: events are read back through it, and the feed ends with it.
    pub(super) pool: PgPool,
    /// For the listener's own connection.
    pub(super) connect: PgConnectOptions,
    /// The store's own notifications carry this origin.
    pub(super) origin: String,
}

impl Feed {
    /// The change a notification announces; `None` for this store's own (or garbage).
    async fn decode_notification(&self, payload: &str) -> Option<RemoteChange> {
        let (origin, json) = payload.split_once('|')?;
        if origin == self.origin {
            return None;
        }
        let items: Vec<Announced> = match serde_json::from_str(json) {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable notification");
                return None;
            }
        };
        let mut events = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Announced::Event(e) => events.push(e),
                Announced::Fetch { fetch: (id, seq) } => {
                    match task_events(&self.pool, id, seq - 1, 1).await {
                        Ok(mut e) if !e.is_empty() => events.push(e.remove(0)),
                        // Purged meanwhile, or the store is unreachable: the caller rereads.
                        _ => return Some(RemoteChange::Gap),
                    }
                }
            }
        }
        Some(RemoteChange::Events(events))
    }
}

/// Forwards the notifications of other processes until `tx`'s receiver is dropped or
/// the pool is closed. Reconnects (with a pause) whenever the connection is lost, and
/// reports each interruption as a [`RemoteChange::Gap`].
pub(super) async fn listen_loop(feed: Feed, tx: mpsc::Sender<RemoteChange>) {
    let mut first = true;
    loop {
        if tx.is_closed() || feed.pool.is_closed() {
            return;
        }
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        first = false;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(feed.connect.clone());
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "cannot listen for other nodes' changes yet");
                continue;
            }
        };
        listener.ignore_pool_close_event(true);
        let channel: String = match sqlx::query_scalar(CHANNEL).fetch_one(&mut listener).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "cannot listen for other nodes' changes yet");
                continue;
            }
        };
        if let Err(e) = listener.listen(&channel).await {
            tracing::debug!(error = %e, "cannot listen for other nodes' changes yet");
            continue;
        }
        // Whatever happened while not listening is unknown to the caller.
        if tx.send(RemoteChange::Gap).await.is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                r = listener.try_recv() => r,
                _ = tx.closed() => return,
            };
            match received {
                Ok(Some(n)) => {
                    let Some(change) = feed.decode_notification(n.payload()).await else {
                        continue;
                    };
                    if tx.send(change).await.is_err() {
                        return;
                    }
                }
                // The connection dropped; the listener reconnected.
                Ok(None) => {
                    if tx.send(RemoteChange::Gap).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the feed of other nodes' changes; reconnecting");
                    break;
                }
            }
        }
    }
}
