//! `GET /v1/tasks/{id}/events`: the task's events as Server-Sent Events.
//!
//! Each event's SSE `id` is its sequence number in the event log, so a client that
//! reconnects with `Last-Event-ID` resumes exactly where it stopped. The stream first
//! replays the log after that point, then follows live events, and ends after the
//! event that puts the task in a final state (which carries the result or error).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use baton_core::{TaskEvent, TaskId};
use baton_engine::Engine;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::extract::{ApiQuery, Principal, parse_task_id};
use crate::error::ApiError;

const REPLAY_PAGE: u32 = 500;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Same as the `Last-Event-ID` header, for clients that cannot set headers.
    last_event_id: Option<i64>,
}

pub async fn events(
    State(s): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<EventParams>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_task_id(&id)?;
    let last = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID must be an event id (an integer)"))?,
        None => p.last_event_id.unwrap_or(0),
    };
    // Subscribe before the first read so that nothing committed in between is missed,
    // and check ownership now so that a foreign task is a 404, not an empty stream.
    let sub = s.engine.subscribe(id);
    s.engine.get(&principal, id).await?;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(stream_events(
        s.engine.clone(),
        principal,
        s.shutdown.clone(),
        id,
        last,
        sub,
        tx,
    ));
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

async fn stream_events(
    engine: Engine,
    principal: String,
    shutdown: CancellationToken,
    id: TaskId,
    mut last: i64,
    mut sub: baton_engine::hub::TaskSubscription,
    tx: mpsc::Sender<Result<Event, Infallible>>,
) {
    loop {
        // Replay what the log has after `last`.
        let replay = match engine.events(&principal, id, last, REPLAY_PAGE).await {
            Ok(evs) => evs,
            Err(e) => {
                let _ = tx
                    .send(Ok(Event::default().event("error").data(e.to_string())))
                    .await;
                return;
            }
        };
        let full_page = replay.len() == REPLAY_PAGE as usize;
        for ev in replay {
            last = ev.seq;
            if !send(&engine, &principal, &tx, &ev).await || ev.status.is_final() {
                return;
            }
        }
        if full_page {
            continue;
        }
        // Follow live events until a gap forces another replay.
        loop {
            tokio::select! {
                ev = sub.recv() => match ev {
                    Ok(ev) if ev.seq <= last => continue,
                    Ok(ev) => {
                        last = ev.seq;
                        if !send(&engine, &principal, &tx, &ev).await || ev.status.is_final() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                // Events written by another node reach the log first; look now and then.
                _ = tokio::time::sleep(Duration::from_secs(5)) => break,
                _ = tx.closed() => return,
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Sends one event; the final one carries the task's result or error. `false` when the
/// client has gone.
async fn send(
    engine: &Engine,
    principal: &str,
    tx: &mpsc::Sender<Result<Event, Infallible>>,
    ev: &TaskEvent,
) -> bool {
    let mut data = serde_json::to_value(ev).unwrap_or_default();
    if ev.status.is_final()
        && let Ok(task) = engine.get(principal, ev.task_id).await
        && let Some(obj) = data.as_object_mut()
    {
        if let Some(r) = task.result {
            obj.insert("result".into(), r);
        }
        if let Some(e) = task.error {
            obj.insert("error".into(), serde_json::to_value(e).unwrap_or_default());
        }
    }
    let event = Event::default()
        .id(ev.seq.to_string())
        .event(ev.kind.as_str())
        .data(data.to_string());
    tx.send(Ok(event)).await.is_ok()
}
