//! `GET /v1/tasks/{id}/events`: the task's events as Server-Sent Events.
//!
//! Each event's SSE `id` is its sequence number in the event log, so a client that
//! reconnects with `Last-Event-ID` resumes exactly where it stopped. The stream first
//! replays the log after that point, then follows live events, and ends after the
//! event that puts the task in a final state (which carries the result or error).
//! The task's log lines come along as `log` events (no SSE id; `logs_after` resumes
//! them), every line before the final event.

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
    /// Send the task's log lines too, as `log` events (default true). They carry no SSE
    /// id (the id is the event log's); a client resuming passes `logs_after`.
    logs: Option<bool>,
    /// Log lines after this number (a line's `seq`); from the first kept when absent.
    logs_after: Option<i64>,
}

/// How often a followed task's log is looked at for lines stored by any node.
const LOG_POLL: Duration = Duration::from_millis(250);

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
    let logs = p.logs.unwrap_or(true).then_some(p.logs_after.unwrap_or(0));
    tokio::spawn(stream_events(
        s.engine.clone(),
        principal,
        s.shutdown.clone(),
        id,
        (last, logs),
        sub,
        tx,
    ));
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Sends the task's log lines after `*after` (when following logs); `false` when the
/// client has gone.
async fn send_logs(
    engine: &Engine,
    principal: &str,
    id: TaskId,
    after: &mut Option<i64>,
    tx: &mpsc::Sender<Result<Event, Infallible>>,
) -> bool {
    let Some(from) = *after else {
        return true;
    };
    let Ok(page) = engine
        .logs(principal, id, from, REPLAY_PAGE, Duration::ZERO)
        .await
    else {
        return true;
    };
    for line in &page.logs {
        let data = serde_json::to_string(line).unwrap_or_default();
        if tx
            .send(Ok(Event::default().event("log").data(data)))
            .await
            .is_err()
        {
            return false;
        }
    }
    *after = Some(page.next_after);
    true
}

async fn stream_events(
    engine: Engine,
    principal: String,
    shutdown: CancellationToken,
    id: TaskId,
    (mut last, mut logs): (i64, Option<i64>),
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
        let n = replay.len();
        for (i, ev) in replay.into_iter().enumerate() {
            last = ev.seq;
            // A final event ends the stream only if it ends the task as it is now: a
            // task retried since has more events after it (a later page, or the live
            // feed, brings them).
            let ends = ev.status.is_final()
                && i + 1 == n
                && !full_page
                && matches!(engine.get(&principal, id).await, Ok(t) if t.status.is_final());
            // A run's lines are stored before its outcome: they all go out before it.
            if ends && !send_logs(&engine, &principal, id, &mut logs, &tx).await {
                return;
            }
            if !send(&engine, &principal, &tx, &ev, ends).await || ends {
                return;
            }
        }
        if full_page {
            continue;
        }
        if !send_logs(&engine, &principal, id, &mut logs, &tx).await {
            return;
        }
        // Follow live events until a gap forces another replay; look at the log for
        // lines now and then (any node may store them).
        let replay_at = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            tokio::select! {
                ev = sub.recv() => match ev {
                    Ok(ev) if ev.seq <= last => continue,
                    Ok(ev) => {
                        last = ev.seq;
                        if ev.status.is_final()
                            && !send_logs(&engine, &principal, id, &mut logs, &tx).await
                        {
                            return;
                        }
                        let ends = ev.status.is_final();
                        if !send(&engine, &principal, &tx, &ev, ends).await || ends {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tokio::time::sleep(LOG_POLL), if logs.is_some() => {
                    if !send_logs(&engine, &principal, id, &mut logs, &tx).await {
                        return;
                    }
                }
                // Events written by another node reach the log first; look now and then.
                _ = tokio::time::sleep_until(replay_at) => break,
                _ = tx.closed() => return,
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Sends one event; the one that ends the stream (`ends`: the task's final event) carries
/// the task's result or error. An earlier run's final event, replayed, carries neither:
/// they are the task's now, not that run's. `false` when the client has gone.
async fn send(
    engine: &Engine,
    principal: &str,
    tx: &mpsc::Sender<Result<Event, Infallible>>,
    ev: &TaskEvent,
    ends: bool,
) -> bool {
    let mut data = serde_json::to_value(ev).unwrap_or_default();
    if ends
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
