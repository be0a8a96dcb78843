//! [`Engine`]: the service API.
//!
//! REST handlers, MCP handlers and the CLI all call these methods; none of them talks to
//! the store directly. Calls take the caller's principal (`owner`) and treat a task owned
//! by someone else exactly like a task that does not exist.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use baton_core::submit::SubmitRequest;
use baton_core::task::NewTask;
use baton_core::{EventKind, Task, TaskEvent, TaskId, TaskStatus, Timestamp};
use baton_store::{
    CancelOutcome, CreateOutcome, QueueStats, RescheduleOutcome, RetryOutcome, Store, TaskQuery,
};

use crate::hub::TaskSubscription;
use crate::inner::Inner;
use crate::tools::ToolRegistry;
use crate::{EngineConfig, EngineError, maintenance};

/// The result of a submission.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub task: Task,
    /// `false` when an idempotency key matched an existing task: nothing new was stored.
    pub created: bool,
}

/// How a cancellation went.
#[derive(Debug, Clone)]
pub enum Cancelled {
    /// The task had not started; it is cancelled.
    Now(Task),
    /// The task is running; its tool has been told to stop.
    Requested(Task),
}

impl Cancelled {
    pub fn task(&self) -> &Task {
        match self {
            Cancelled::Now(t) | Cancelled::Requested(t) => t,
        }
    }
}

/// The service API. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// How long a computed duration estimate is reused.
const ESTIMATE_TTL: Duration = Duration::from_secs(10);
/// How many recent runs the estimate looks at.
const ESTIMATE_SAMPLE: u32 = 50;

impl Engine {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Engine {
        Engine { inner }
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Which store this engine runs on: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.inner.store.backend()
    }

    pub fn tools(&self) -> &Arc<ToolRegistry> {
        &self.inner.tools
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Tasks pending, running or waiting for input (as the submit-time cap sees it).
    pub fn active_tasks(&self) -> u64 {
        self.inner.publisher.active.load(Ordering::Relaxed).max(0) as u64
    }

    /// Whether `n` more active tasks fit under `tasks.max_active` (every way a task becomes
    /// active again goes through here: submissions, workflows, retries by hand).
    pub(crate) fn admit(&self, n: u64) -> Result<(), EngineError> {
        let limit = self.inner.config.max_active_tasks;
        let active = self.active_tasks();
        if active + n > limit {
            return Err(EngineError::TooManyActive {
                active,
                limit,
                retry_after: Duration::from_secs(1),
            });
        }
        Ok(())
    }

    /// How many more active tasks fit under the cap now.
    pub(crate) fn room(&self) -> u64 {
        self.inner
            .config
            .max_active_tasks
            .saturating_sub(self.active_tasks())
    }

    /// Tasks running on this node now.
    pub fn running_here(&self) -> usize {
        self.inner.running.len()
    }

    /// Validates a submission (fields, tool, arguments) into a task ready to store.
    pub fn prepare(&self, owner: &str, req: SubmitRequest) -> Result<NewTask, EngineError> {
        let now = self.now();
        let cache_mode = req.cache.unwrap_or_default();
        let mut task = req.validate(owner, &self.inner.config.submit_defaults, now)?;
        if let Some(url) = &task.callback_url {
            crate::webhooks::check_url("callback_url", url, &self.inner.config.webhooks)?;
        }
        task.trace_parent = crate::trace::current_traceparent();
        // A time to live longer than the retention changes nothing: retention (counted
        // from the finish) keeps the task at least that long anyway.
        if task.expires_at.is_some_and(|e| {
            u128::from(e.millis_since(now)) >= self.inner.config.retention.as_millis()
        }) {
            task.expires_at = None;
        }
        let tools = &self.inner.tools;
        let Some(resolved) = tools.resolve(&task.tool) else {
            // Its server is still connecting (a node just started): accept the call; it
            // waits for the server (`waiting_reason`), and the server checks the
            // arguments and fails the call if it has no such tool.
            if tools.starting_server(&task.tool).is_some() {
                return Ok(task);
            }
            return Err(EngineError::UnknownTool {
                hint: tools.suggest(&task.tool),
                tool: task.tool,
            });
        };
        tools
            .validate(&task.tool, &resolved.info, &task.arguments)
            .map_err(|details| EngineError::InvalidArguments {
                tool: task.tool.clone(),
                details,
            })?;
        let config = &self.inner.config;
        let ttl = config.cache.ttl_of(
            &task.tool,
            &config.separator,
            resolved.provider.cache(),
            &resolved.info.definition,
        );
        task.cache = crate::cache::lookup(
            ttl,
            cache_mode,
            || crate::cache::call_key(owner, &task.tool, &task.arguments),
            now,
        );
        Ok(task)
    }

    pub async fn submit(&self, owner: &str, req: SubmitRequest) -> Result<Submitted, EngineError> {
        let task = self.prepare(owner, req)?;
        Ok(self.submit_prepared(vec![task]).await?.remove(0))
    }

    /// All or nothing: if any request is invalid, nothing is stored and the error names
    /// its index.
    pub async fn submit_many(
        &self,
        owner: &str,
        reqs: Vec<SubmitRequest>,
    ) -> Result<Vec<Submitted>, EngineError> {
        let mut tasks = Vec::with_capacity(reqs.len());
        for (i, r) in reqs.into_iter().enumerate() {
            tasks.push(self.prepare(owner, r).map_err(|e| e.at_index(i))?);
        }
        self.submit_prepared(tasks).await
    }

    /// Stores validated tasks (group-committed with concurrent submissions) and returns
    /// once they are durable.
    pub async fn submit_prepared(
        &self,
        tasks: Vec<NewTask>,
    ) -> Result<Vec<Submitted>, EngineError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        if self.inner.shutting_down.load(Ordering::Relaxed) {
            return Err(EngineError::ShuttingDown);
        }
        self.admit(tasks.len() as u64)?;
        // An idempotency key reused for a different call is refused inside the store's
        // transaction (a 409 that stores none of the batch).
        let outcomes = self
            .inner
            .submitter
            .run(tasks)
            .await
            .map_err(|_| EngineError::ShuttingDown)?
            .map_err(|e| EngineError::from((*e).clone()))?;
        let out = outcomes
            .into_iter()
            .map(|o| match o {
                CreateOutcome::Created(task) => Submitted {
                    task,
                    created: true,
                },
                CreateOutcome::Existing(task) => Submitted {
                    task,
                    created: false,
                },
            })
            .collect();
        Ok(out)
    }

    /// The caller's task as stored: a large result is the reference to its object (see
    /// [`crate::payloads`]); where the result is shown, [`Engine::resolve_payload`] reads
    /// it back. Most callers only check ownership or status, and download nothing.
    pub async fn get(&self, owner: &str, id: TaskId) -> Result<Task, EngineError> {
        match self.inner.store.get_task(id).await? {
            Some(t) if t.owner == owner => Ok(t),
            _ => Err(EngineError::TaskNotFound(id.to_string())),
        }
    }

    /// The tasks created while this one ran (whoever owns them), oldest first.
    pub async fn children(&self, id: TaskId) -> Result<Vec<TaskId>, EngineError> {
        let mut children: Vec<Task> = self
            .inner
            .store
            .list_tasks(&TaskQuery {
                parent_id: Some(id),
                limit: 1000,
                ..Default::default()
            })
            .await?;
        children.sort_by_key(|t| t.seq);
        Ok(children.into_iter().map(|t| t.id).collect())
    }

    /// The caller's tasks, newest first.
    pub async fn list(&self, owner: &str, mut query: TaskQuery) -> Result<Vec<Task>, EngineError> {
        query.owner = Some(owner.to_string());
        Ok(self.inner.store.list_tasks(&query).await?)
    }

    /// Cancels the caller's task, and the tasks created while it ran (its children).
    pub async fn cancel(&self, owner: &str, id: TaskId) -> Result<Cancelled, EngineError> {
        self.get(owner, id).await?;
        self.cancel_unchecked(id).await
    }

    /// [`Engine::cancel`] without the owner check, for the engine's own use (workflows).
    pub(crate) async fn cancel_unchecked(&self, id: TaskId) -> Result<Cancelled, EngineError> {
        let outcome = self.cancel_one(id).await;
        if outcome.is_ok() {
            self.cancel_children(id).await?;
        }
        outcome
    }

    /// Cancels the tasks created while `parent` ran (whoever owns them), and theirs,
    /// depth first.
    pub(crate) async fn cancel_children(&self, parent: TaskId) -> Result<(), EngineError> {
        let mut stack = vec![(parent, 0u32)];
        while let Some((id, depth)) = stack.pop() {
            if depth >= 16 {
                continue;
            }
            for child in self.children(id).await? {
                match self.cancel_one(child).await {
                    Ok(_) | Err(EngineError::Conflict(_) | EngineError::TaskNotFound(_)) => {}
                    Err(e) => return Err(e),
                }
                stack.push((child, depth + 1));
            }
        }
        Ok(())
    }

    async fn cancel_one(&self, id: TaskId) -> Result<Cancelled, EngineError> {
        let now = self.now();
        match self.inner.store.request_cancel(id, now).await? {
            CancelOutcome::Cancelled(task, ev) => {
                self.inner.publisher.publish(&[ev]);
                crate::metrics::finished(&task, baton_core::TaskStatus::Cancelled);
                if task.cache_key.is_some() {
                    crate::cache::settle(&self.inner, &task).await;
                }
                Ok(Cancelled::Now(task))
            }
            CancelOutcome::Requested(task, ev) => {
                self.inner.publisher.publish(&[ev]);
                self.signal_cancel(id);
                Ok(Cancelled::Requested(task))
            }
            CancelOutcome::AlreadyRequested(task) => {
                self.signal_cancel(id);
                Ok(Cancelled::Requested(task))
            }
            CancelOutcome::AlreadyFinal(task) => Err(EngineError::Conflict(format!(
                "task {id} already {}; there is nothing to cancel",
                task.status
            ))),
            CancelOutcome::NotFound => Err(EngineError::TaskNotFound(id.to_string())),
        }
    }

    /// Tells the local run of a task, if any, to stop. Runs on other nodes learn it from
    /// their next heartbeat.
    pub(crate) fn signal_cancel(&self, id: TaskId) {
        self.inner.running.cancel_task(id);
    }

    /// Changes a pending task's priority and/or when it is due.
    pub async fn reschedule(
        &self,
        owner: &str,
        id: TaskId,
        update: &baton_core::submit::TaskUpdate,
    ) -> Result<Task, EngineError> {
        let now = self.now();
        let (priority, run_at) = update.resolve(now)?;
        self.get(owner, id).await?;
        match self
            .inner
            .store
            .reschedule(id, priority, run_at, now)
            .await?
        {
            RescheduleOutcome::Rescheduled(task, ev) => {
                self.inner.publisher.publish(&[ev]);
                self.inner.wake.notify_one();
                Ok(task)
            }
            RescheduleOutcome::NotPending(task) => Err(EngineError::Conflict(format!(
                "task {id} is {}; only a pending task's priority and due time can change",
                task.status
            ))),
            RescheduleOutcome::NotFound => Err(EngineError::TaskNotFound(id.to_string())),
        }
    }

    /// Runs a failed or cancelled task again, with its attempts reset.
    pub async fn retry(&self, owner: &str, id: TaskId) -> Result<Task, EngineError> {
        self.get(owner, id).await?;
        self.admit(1)?;
        match self.inner.store.retry_task(id, self.now()).await? {
            RetryOutcome::Retried(task, ev) => {
                self.inner.publisher.publish(&[ev]);
                Ok(task)
            }
            RetryOutcome::NotRetryable(task) => Err(EngineError::Conflict(format!(
                "task {id} is {}; only failed or cancelled tasks can be retried",
                task.status
            ))),
            RetryOutcome::NotFound => Err(EngineError::TaskNotFound(id.to_string())),
        }
    }

    /// Answers a task's input requests. `responses` is a JSON object keyed like the task's
    /// `input_requests`; the tool receives it and the task runs on.
    pub async fn provide_input(
        &self,
        owner: &str,
        id: TaskId,
        responses: serde_json::Value,
    ) -> Result<Task, EngineError> {
        let task = self.get(owner, id).await?;
        let invalid = |m: String| {
            EngineError::Invalid(baton_core::submit::InvalidRequest::new("responses", m))
        };
        let Some(answers) = responses.as_object() else {
            return Err(invalid(
                "must be a JSON object keyed by input request id".into(),
            ));
        };
        baton_core::value::check_json(&responses).map_err(invalid)?;
        if task.status != TaskStatus::InputRequired {
            return Err(EngineError::Conflict(format!(
                "task {id} is {}, not waiting for input",
                task.status
            )));
        }
        if let Some(requested) = task.input_requests.as_ref().and_then(|r| r.as_object()) {
            if let Some(unknown) = answers.keys().find(|k| !requested.contains_key(*k)) {
                return Err(invalid(format!(
                    "`{unknown}` is not one of the task's input requests ({})",
                    requested.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            if let Some(missing) = requested.keys().find(|k| !answers.contains_key(*k)) {
                return Err(invalid(format!("no answer for input request `{missing}`")));
            }
        }
        match self
            .inner
            .store
            .provide_input(id, responses, self.now())
            .await?
        {
            baton_store::InputOutcome::Accepted(task, ev) => {
                self.inner.publisher.publish(&[ev]);
                Ok(task)
            }
            baton_store::InputOutcome::NotWaiting(task) => Err(EngineError::Conflict(format!(
                "task {id} is {}, not waiting for input",
                task.status
            ))),
            baton_store::InputOutcome::NotFound => Err(EngineError::TaskNotFound(id.to_string())),
        }
    }

    /// Waits up to `timeout` for the task to finish, and returns it as it then is.
    pub async fn wait(
        &self,
        owner: &str,
        id: TaskId,
        timeout: Duration,
    ) -> Result<Task, EngineError> {
        let mut task = self.wait_stored(owner, id, timeout).await?;
        self.resolve_payload(&mut task).await?;
        Ok(task)
    }

    /// [`Engine::wait`], with a large result left as the reference to its object (see
    /// [`crate::payloads`]), for a caller that streams it.
    pub async fn wait_stored(
        &self,
        owner: &str,
        id: TaskId,
        timeout: Duration,
    ) -> Result<Task, EngineError> {
        let mut sub = self.subscribe(id);
        // An archived task is final: it answers at once.
        let mut task = self.get_or_archived(owner, id).await?;
        if task.status.is_final() || timeout.is_zero() {
            return Ok(task);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                ev = sub.recv() => match ev {
                    Ok(ev) if !ev.status.is_final() => {
                        // Keep the picture current, so the final event completes it.
                        if ev.kind == EventKind::Started {
                            task.started_at = Some(ev.at);
                            task.attempt = ev.attempt.unwrap_or(task.attempt);
                        }
                        task.status = ev.status;
                        continue;
                    }
                    // The final event usually carries what changed: no need to read the
                    // task back. Otherwise (or after a gap, or a closed hub) read the truth
                    // from the store.
                    ev => {
                        if let Some(done) = ev.ok().and_then(|ev| final_from_event(&task, &ev)) {
                            return Ok(done);
                        }
                        let task = self.get(owner, id).await?;
                        if task.status.is_final() {
                            return Ok(task);
                        }
                    }
                },
                // Events from another node reach this hub only where the store relays
                // them; re-reading now and then keeps waits correct without relying on it.
                _ = tokio::time::sleep(Duration::from_secs(2)) => {
                    let task = self.get(owner, id).await?;
                    if task.status.is_final() {
                        return Ok(task);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return self.get(owner, id).await,
            }
        }
    }

    /// The task's logged events after `after_seq`, oldest first.
    pub async fn events(
        &self,
        owner: &str,
        id: TaskId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<TaskEvent>, EngineError> {
        self.get(owner, id).await?;
        Ok(self.inner.store.task_events(id, after_seq, limit).await?)
    }

    /// The task's log lines after `after_seq`, oldest first, at most `limit`. With a
    /// `wait`, a request that finds no line yet, for a task still unfinished, waits up to
    /// that long for one (lines this node's runs log wake it at once; lines stored by
    /// other nodes are looked for every quarter second). `finished` says the task is over
    /// and these are its last lines: a follower stops there.
    pub async fn logs(
        &self,
        owner: &str,
        id: TaskId,
        after_seq: i64,
        limit: u32,
        wait: Duration,
    ) -> Result<crate::views::LogPage, EngineError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut live = self.inner.publisher.hub.subscribe_logs();
        loop {
            // The task first: a run's lines are stored before its outcome, so lines read
            // after seeing the task final are all of them.
            let task = self.get(owner, id).await?;
            let lines = self.inner.store.task_logs(id, after_seq, limit).await?;
            let finished = task.status.is_final() && lines.len() < limit as usize;
            if !lines.is_empty() || finished || tokio::time::Instant::now() >= deadline {
                let next_after = lines.last().map_or(after_seq, |l| l.seq);
                return Ok(crate::views::LogPage {
                    logs: lines,
                    next_after,
                    finished,
                });
            }
            let tick = tokio::time::Instant::now() + Duration::from_millis(250);
            loop {
                tokio::select! {
                    l = live.recv() => match l {
                        // Written once the run's next flush goes in.
                        Ok(l) if l.task_id == id => {
                            tokio::time::sleep(self.inner.config.progress_flush).await;
                            break;
                        }
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            tokio::time::sleep_until(tick.min(deadline)).await;
                            break;
                        }
                    },
                    _ = tokio::time::sleep_until(tick.min(deadline)) => break,
                }
            }
        }
    }

    /// Live events of a task (subscribe first, then read the log, to miss nothing).
    pub fn subscribe(&self, id: TaskId) -> TaskSubscription {
        self.inner.publisher.hub.subscribe(id)
    }

    /// Live events of all tasks.
    pub fn subscribe_all(&self) -> tokio::sync::broadcast::Receiver<Arc<TaskEvent>> {
        self.inner.publisher.hub.subscribe_all()
    }

    /// Log messages of tools running on this node (not stored; see [`crate::hub::TaskLog`]).
    pub fn subscribe_logs(&self) -> tokio::sync::broadcast::Receiver<Arc<crate::hub::TaskLog>> {
        self.inner.publisher.hub.subscribe_logs()
    }

    /// The processes sharing this store (nodes and workers), as they last reported, each
    /// with its health: `healthy` (heartbeating), `late` (a heartbeat overdue), `lost`
    /// (silent for a lease: its tasks were rescued) or `stopped` (stopped cleanly).
    pub async fn peers(&self) -> Result<Vec<(baton_store::Peer, &'static str)>, EngineError> {
        let now = self.now();
        let late_after = self.inner.config.heartbeat.saturating_mul(2);
        Ok(self
            .inner
            .store
            .list_peers()
            .await?
            .into_iter()
            .map(|p| {
                let health = match p.state {
                    baton_store::PeerState::Stopped => "stopped",
                    baton_store::PeerState::Lost => "lost",
                    baton_store::PeerState::Live
                        if now.saturating_sub(late_after) > p.last_heartbeat =>
                    {
                        "late"
                    }
                    baton_store::PeerState::Live => "healthy",
                };
                (p, health)
            })
            .collect())
    }

    /// The queues of `owner` (of every principal when `None`: an admin's view).
    pub async fn queues(&self, owner: Option<&str>) -> Result<Vec<QueueStats>, EngineError> {
        Ok(self.inner.store.queue_stats(self.now(), owner).await?)
    }

    /// Pauses or resumes `owner`'s queue. The default queue always exists; another exists
    /// for a principal once it holds one of their tasks (or has a setting): pausing one
    /// that does not is a 404, not a new queue (names are not a resource anyone may mint).
    /// Checks that `queue` is a queue of `owner` (it holds tasks or has a setting, or is
    /// the default queue).
    async fn known_queue(&self, owner: &str, queue: &str) -> Result<(), EngineError> {
        baton_core::tool::validate_name("queue", queue, &['_', '.'])
            .map_err(|m| baton_core::submit::InvalidRequest::new("queue", m))?;
        let known = queue == self.config().submit_defaults.queue
            || self
                .queues(Some(owner))
                .await?
                .iter()
                .any(|q| q.name == queue);
        if known {
            Ok(())
        } else {
            Err(EngineError::QueueNotFound(queue.to_string()))
        }
    }

    /// Cancels `owner`'s tasks in `queue` that are in one of `statuses` (open ones: a
    /// finished task has nothing to cancel), and the tasks they created; returns how many
    /// of the queue's tasks were cancelled (or told to stop, when running).
    /// `statuses` are status names; none means pending.
    pub async fn clear_queue(
        &self,
        owner: &str,
        queue: &str,
        statuses: &[String],
    ) -> Result<crate::views::QueueCleared, EngineError> {
        self.known_queue(owner, queue).await?;
        let mut parsed = Vec::new();
        for name in statuses {
            let status: TaskStatus = name
                .parse()
                .map_err(|e| baton_core::submit::InvalidRequest::new("status", e))?;
            if status.is_final() {
                return Err(baton_core::submit::InvalidRequest::new(
                    "status",
                    format!(
                        "a {status} task has nothing to cancel; one of pending, running, input_required"
                    ),
                )
                .into());
            }
            if !parsed.contains(&status) {
                parsed.push(status);
            }
        }
        if parsed.is_empty() {
            parsed.push(TaskStatus::Pending);
        }
        let statuses = parsed;
        let mut cancelled = 0;
        for status in &statuses {
            let mut before_seq = None;
            loop {
                let page = self
                    .inner
                    .store
                    .list_tasks(&TaskQuery {
                        owner: Some(owner.to_string()),
                        status: Some(*status),
                        queue: Some(queue.to_string()),
                        before_seq,
                        limit: 500,
                        ..TaskQuery::default()
                    })
                    .await?;
                let Some(last) = page.last() else { break };
                before_seq = Some(last.seq);
                for task in page {
                    match self.cancel_unchecked(task.id).await {
                        Ok(_) => cancelled += 1,
                        // Finished or gone meanwhile.
                        Err(EngineError::Conflict(_) | EngineError::TaskNotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(crate::views::QueueCleared {
            name: queue.to_string(),
            statuses,
            cancelled,
        })
    }

    pub async fn set_queue_paused(
        &self,
        owner: &str,
        queue: &str,
        paused: bool,
    ) -> Result<(), EngineError> {
        self.known_queue(owner, queue).await?;
        self.inner
            .store
            .set_queue_paused(owner, queue, paused, self.now())
            .await?;
        if !paused {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// When the task will probably finish: from its progress rate while it runs, else
    /// from the median duration of the tool's recent successful runs. `None` when there
    /// is nothing to go on, or the task has finished.
    pub async fn estimate_completion(&self, task: &Task) -> Option<Timestamp> {
        if task.status.is_final() {
            return None;
        }
        let now = self.now();
        if task.status == TaskStatus::Running
            && let (Some(p), Some(started)) = (task.progress, task.started_at)
            && p >= 0.05
        {
            let elapsed = now.millis_since(started) as f64;
            let total = Duration::from_millis((elapsed / p) as u64);
            return Some(started.saturating_add(total).max(now));
        }
        let median = self.median_duration(&task.tool).await?;
        let median = Duration::from_millis(median);
        Some(match task.status {
            TaskStatus::Pending => task.run_at.max(now).saturating_add(median),
            _ => task
                .started_at
                .unwrap_or(now)
                .saturating_add(median)
                .max(now),
        })
    }

    /// The median duration of the tool's recent successful runs (cached briefly).
    pub(crate) async fn tool_median(&self, tool: &str) -> Option<u64> {
        self.median_duration(tool).await
    }

    async fn median_duration(&self, tool: &str) -> Option<u64> {
        if let Some((at, v)) = self
            .inner
            .estimates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tool)
            && at.elapsed() < ESTIMATE_TTL
        {
            return *v;
        }
        let mut d = self
            .inner
            .store
            .recent_durations(tool, ESTIMATE_SAMPLE)
            .await
            .ok()?;
        let median = if d.is_empty() {
            None
        } else {
            d.sort_unstable();
            Some(d[d.len() / 2])
        };
        let mut cache = self
            .inner
            .estimates
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(tool.to_string(), (Instant::now(), median));
        median
    }

    /// Whether this process can take work: not draining, the store answers, and every
    /// configured server has connected or failed its first attempt.
    pub async fn ready(&self) -> Result<(), EngineError> {
        if self.inner.shutting_down.load(Ordering::Relaxed) {
            return Err(EngineError::ShuttingDown);
        }
        self.inner.store.ping().await?;
        let starting = self.inner.tools.starting_servers();
        if !starting.is_empty() {
            return Err(EngineError::Starting(starting));
        }
        Ok(())
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Relaxed)
    }

    /// Runs lease rescue now (normally periodic).
    pub async fn rescue_expired_leases(&self) {
        maintenance::rescue_expired(&self.inner).await;
    }

    /// Folds finished minutes into the analytics rollup now (normally periodic); returns
    /// the instant folded up to.
    pub async fn fold_analytics(&self) -> Option<baton_core::Timestamp> {
        maintenance::fold_analytics(&self.inner).await
    }

    /// Runs retention now (normally periodic); returns how many tasks were deleted.
    pub async fn purge_expired(&self) -> u64 {
        maintenance::purge_expired(&self.inner).await
    }
}

/// The task after its final event, from the task as last read and the event, when the
/// event says enough (a completion with its result, a failure with its error, a
/// cancellation).
fn final_from_event(before: &Task, ev: &TaskEvent) -> Option<Task> {
    let mut t = before.clone();
    t.status = ev.status;
    t.completed_at = Some(ev.at);
    t.updated_at = ev.at;
    t.attempt = ev.attempt.unwrap_or(t.attempt);
    t.lease = None;
    t.input_requests = None;
    match ev.kind {
        EventKind::Completed => {
            t.result = Some(ev.result.as_deref()?.clone());
            t.error = None;
            t.progress = Some(1.0);
        }
        EventKind::Failed => {
            t.error = Some(serde_json::from_value(ev.data.clone()?).ok()?);
            t.result = None;
        }
        EventKind::Cancelled => t.cancel_requested = true,
        _ => return None,
    }
    Some(t)
}

impl EngineError {
    /// Names the position of a failing item in a batch.
    pub fn at_index(self, index: usize) -> EngineError {
        match self {
            EngineError::Invalid(mut e) => {
                e.field = format!("tasks[{index}].{}", e.field);
                EngineError::Invalid(e)
            }
            EngineError::UnknownTool { tool, hint } => EngineError::UnknownTool {
                tool,
                hint: format!("{hint} (tasks[{index}])"),
            },
            EngineError::InvalidArguments { tool, details } => EngineError::InvalidArguments {
                tool,
                details: format!("{details} (tasks[{index}])"),
            },
            other => other,
        }
    }
}
