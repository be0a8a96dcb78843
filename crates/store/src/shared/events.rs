//! The events the writes of both backends append (a backend appends them with
//! [`Tx::insert_events`](super::dialect::Tx::insert_events)).

use baton_core::event::NewEvent;
use baton_core::policy::Transition;
use baton_core::task::NewTask;
use baton_core::{TaskId, TaskStatus, Timestamp};
use serde_json::Value;

/// The event of a finished run.
pub(crate) fn transition_event(
    id: TaskId,
    at: Timestamp,
    transition: &Transition,
    attempt: u32,
) -> NewEvent {
    let mut ev = NewEvent::new(id, at, transition.event_kind(), transition.status());
    ev.attempt = Some(attempt);
    match transition {
        Transition::Retry { run_at, error } => {
            ev.message = Some(format!(
                "attempt {attempt} failed ({}); retrying at {run_at}",
                error.message
            ));
            ev.data = serde_json::to_value(error).ok();
        }
        Transition::Fail { error } => {
            ev.message = Some(error.message.clone());
            ev.data = serde_json::to_value(error).ok();
        }
        Transition::Complete { .. } => ev.progress = Some(1.0),
        Transition::Cancel => {}
    }
    ev
}

/// The `created` event of a task (see [`step_data`]).
pub(crate) fn created_event(t: &NewTask) -> NewEvent {
    let mut ev = NewEvent::new(
        t.id,
        t.created_at,
        baton_core::EventKind::Created,
        TaskStatus::Pending,
    );
    if t.run_at > t.created_at {
        ev.message = Some(format!("scheduled for {}", t.run_at));
    }
    ev.data = step_data(t.step.as_ref());
    ev
}

/// The `data` of a step task's `created` and `retried` events: its workflow and step, so
/// that whoever coordinates the workflow learns of it (also from another process).
pub(crate) fn step_data(step: Option<&baton_core::task::StepRef>) -> Option<Value> {
    step.map(|s| serde_json::json!({"workflow_id": s.workflow_id, "step_id": s.step_id}))
}

/// Events as the store can hold them: free text without NUL (see [`baton_core::value`]).
/// A tool's message is not the caller's to refuse, and one unstorable message must not
/// fail the writes batched with it.
pub(crate) fn storable_events(mut events: Vec<NewEvent>) -> Vec<NewEvent> {
    for e in &mut events {
        if let Some(m) = &e.message
            && let std::borrow::Cow::Owned(clean) = baton_core::value::storable_text(m)
        {
            e.message = Some(clean);
        }
    }
    events
}

/// A progress message as the store can hold it (see [`storable_events`]).
pub(crate) fn storable_message(m: Option<&str>) -> Option<std::borrow::Cow<'_, str>> {
    m.map(baton_core::value::storable_text)
}

/// An optional JSON value as the text both dialects bind it as.
pub(crate) fn json_or_null(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}
