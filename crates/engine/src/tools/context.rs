//! What a running tool gets from the engine: its task's identity and cancellation, a
//! progress reporter, and a handle for the durable writes it may make about its own task
//! (checkpoints, input requests), all under the run's lease.

use std::sync::Arc;
use std::time::Duration;

use baton_core::TaskId;
use baton_store::ProgressUpdate;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::inner::Inner;
use crate::publisher::Publisher;
use crate::runs::ProgressBuffer;
use crate::tools::ToolCallError;
use serde_json::Value;

/// What a running tool gets from the engine.
#[derive(Clone)]
pub struct ToolContext {
    pub task_id: TaskId,
    /// 1 for the first run.
    pub attempt: u32,
    /// Cancelled when a client cancels the task or its timeout fires. Tools should stop
    /// promptly; after the engine's cancel grace they are abandoned.
    pub cancel: CancellationToken,
    pub progress: ProgressReporter,
    /// State saved by an earlier attempt (e.g. an upstream task id to resume polling).
    pub checkpoint: Option<Value>,
    /// Durable writes a tool can make about its own task.
    pub task: TaskHandle,
}

/// Handed to a running tool to report how far it got.
#[derive(Clone)]
pub struct ProgressReporter {
    buffer: Arc<ProgressBuffer>,
    clock: Clock,
    id: TaskId,
    token: i64,
}

impl ProgressReporter {
    pub(crate) fn new(buffer: Arc<ProgressBuffer>, clock: Clock, id: TaskId, token: i64) -> Self {
        ProgressReporter {
            buffer,
            clock,
            id,
            token,
        }
    }

    /// `progress` is a fraction in `0.0..=1.0` (clamped; NaN is ignored). Reports are
    /// cheap: they are coalesced and written in batches.
    pub fn report(&self, progress: Option<f64>, message: Option<String>) {
        let progress = progress
            .filter(|p| p.is_finite())
            .map(|p| p.clamp(0.0, 1.0));
        let message = message.map(|m| {
            if m.len() > 1000 {
                let mut cut = 1000;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                m[..cut].to_string()
            } else {
                m
            }
        });
        if progress.is_none() && message.is_none() {
            return;
        }
        self.buffer.push(ProgressUpdate {
            id: self.id,
            token: self.token,
            progress,
            message,
            at: self.clock.now(),
        });
    }
}

/// Lets a running tool write about its own task, under its lease.
#[derive(Clone)]
pub struct TaskHandle {
    store: Arc<dyn baton_store::Store>,
    publisher: Publisher,
    clock: Clock,
    logs: Arc<crate::runs::LogBuffer>,
    log_keep: baton_core::log::LogKeep,
    id: TaskId,
    token: i64,
    attempt: u32,
}

fn lease_lost() -> ToolCallError {
    ToolCallError::new(
        "lease_lost",
        "this run lost its lease; the task runs again elsewhere",
        true,
    )
}

impl TaskHandle {
    pub(crate) fn new(inner: &Inner, id: TaskId, token: i64, attempt: u32) -> Self {
        TaskHandle {
            store: inner.store.clone(),
            publisher: inner.publisher.clone(),
            clock: inner.clock.clone(),
            logs: inner.logs.clone(),
            log_keep: inner.config.log_keep,
            id,
            token,
            attempt,
        }
    }

    /// Keeps state for a later attempt (e.g. after a restart), durably.
    pub async fn save_checkpoint(
        &self,
        checkpoint: serde_json::Value,
    ) -> Result<(), ToolCallError> {
        match self
            .store
            .save_checkpoint(self.id, self.token, checkpoint, self.clock.now())
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(lease_lost()),
            Err(e) => Err(ToolCallError::new("store_unavailable", e.to_string(), true)),
        }
    }

    /// Keeps a log message with the task (written in batches, the newest lines kept) and
    /// relays it at once to clients following this task on this node.
    pub fn log(&self, level: &str, logger: Option<String>, data: serde_json::Value) {
        self.logs.push(baton_core::log::NewLogLine::new(
            self.id,
            self.attempt,
            self.clock.now(),
            level,
            logger.as_deref(),
            &data,
            self.log_keep,
        ));
        self.publisher.hub.publish_log(crate::hub::TaskLog {
            task_id: self.id,
            level: level.to_string(),
            logger,
            data,
        });
    }

    /// Like [`TaskHandle::request_input`], for at most `limit`: then `on_timeout` is
    /// recorded as the answers (an `input_received` event, the task running again), as if a
    /// client had given them, and returned. An answer that races the deadline wins.
    pub async fn request_input_within(
        &self,
        requests: serde_json::Value,
        cancel: &CancellationToken,
        limit: Duration,
        on_timeout: serde_json::Value,
    ) -> Result<serde_json::Value, ToolCallError> {
        let stop = cancel.child_token();
        let asked = self.request_input(requests, &stop);
        tokio::pin!(asked);
        tokio::select! {
            r = &mut asked => return r,
            _ = tokio::time::sleep(limit) => stop.cancel(),
        }
        if cancel.is_cancelled() {
            return Err(ToolCallError::cancelled());
        }
        tracing::info!(task_id = %self.id, limit_s = limit.as_secs(), "no answer to the input request in time; answering it with the default");
        match self
            .store
            .provide_input(self.id, on_timeout.clone(), self.clock.now())
            .await
        {
            Ok(baton_store::InputOutcome::Accepted(_, ev)) => self.publisher.publish(&[ev]),
            Ok(_) => {}
            Err(e) => return Err(ToolCallError::new("store_unavailable", e.to_string(), true)),
        }
        match self.store.take_input(self.id, self.token).await {
            Ok(Some(answers)) => Ok(answers),
            Ok(None) => Ok(on_timeout),
            Err(e) => Err(ToolCallError::new("store_unavailable", e.to_string(), true)),
        }
    }

    /// Puts the task in `input_required` with `requests` (a JSON object: one entry per
    /// request, keyed by an id the answers use) and waits for a client's answers.
    pub async fn request_input(
        &self,
        requests: serde_json::Value,
        cancel: &CancellationToken,
    ) -> Result<serde_json::Value, ToolCallError> {
        if let Err(m) = baton_core::value::check_json(&requests) {
            return Err(ToolCallError::new(
                "invalid_input_request",
                format!("the tool's input request {m}"),
                false,
            ));
        }
        // Subscribe first so the answer's event cannot slip in between.
        let mut sub = self.publisher.hub.subscribe(self.id);
        match self
            .store
            .set_input_required(self.id, self.token, requests, self.clock.now())
            .await
        {
            Ok(Some(ev)) => self.publisher.publish(&[ev]),
            Ok(None) => return Err(lease_lost()),
            Err(e) => return Err(ToolCallError::new("store_unavailable", e.to_string(), true)),
        }
        loop {
            tokio::select! {
                _ = sub.recv() => {}
                // Answers given through another node arrive in the store first.
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = cancel.cancelled() => return Err(ToolCallError::cancelled()),
            }
            match self.store.take_input(self.id, self.token).await {
                Ok(Some(answers)) => return Ok(answers),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(task_id = %self.id, error = %e, "could not read input answers")
                }
            }
        }
    }
}
