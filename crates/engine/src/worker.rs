//! The in-process worker pool.
//!
//! One dispatcher claims batches of due tasks while there are free slots, and spawns one
//! run per task. A run executes the tool with a cancellation token, a timeout and a
//! progress reporter, then asks the store to apply the outcome fenced by its lease token.
//! A heartbeat loop extends every lease this node holds in one statement and learns of
//! cancellations requested elsewhere; a flush loop writes coalesced progress.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_core::policy::{self, Outcome};
use baton_core::{Task, TaskError};
use baton_store::{ClaimRequest, Finish, FinishOutcome};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::inner::Inner;
use crate::tools::context::{ProgressReporter, TaskHandle};
use crate::tools::{ToolContext, ToolOutput};

fn new_token() -> i64 {
    rand::random::<i64>() & i64::MAX
}

/// The limits every claim respects: configured ones and those of tool providers (server
/// `max_concurrency` and `rate_limit`, unavailable servers).
pub(crate) fn claim_limits(
    inner: &Inner,
) -> (
    Vec<baton_store::ConcurrencyLimit>,
    Vec<baton_store::RateLimit>,
) {
    let mut limits = inner.config.concurrency_limits.clone();
    limits.extend(inner.tools.claim_limits());
    let mut rates = inner.config.rate_limits.clone();
    rates.extend(inner.tools.claim_rates());
    (limits, rates)
}

/// How long a dispatcher that found too little waits before it looks again: the poll
/// interval, or sooner under a rate limit, whose tasks become claimable as tokens flow
/// in without anything waking the dispatcher (one token's time, at least 50 ms).
fn poll_after(poll: Duration, rates: &[baton_store::RateLimit]) -> Duration {
    rates
        .iter()
        .map(|r| (r.rate.per / r.rate.count).max(Duration::from_millis(50)))
        .fold(poll, Duration::min)
}

/// Whether any limit may hold tasks back (see [`claim_limits`]), without collecting them:
/// asked after every run.
fn has_claim_limits(inner: &Inner) -> bool {
    let c = &inner.config;
    !c.concurrency_limits.is_empty()
        || !c.rate_limits.is_empty()
        || c.group_max.is_some()
        || !inner.tools.claim_limits().is_empty()
        || !inner.tools.claim_rates().is_empty()
}

/// Takes up to a claim batch of free slots; unused ones go back when dropped.
fn reserve_slots(inner: &Arc<Inner>) -> Vec<OwnedSemaphorePermit> {
    let mut permits = Vec::new();
    while permits.len() < inner.config.claim_batch {
        match inner.slots.clone().try_acquire_owned() {
            Ok(p) => permits.push(p),
            Err(_) => break,
        }
    }
    permits
}

/// Stores a batch of submissions; when this node has free workers, the same transaction
/// claims for them (in the usual order, not just the new tasks) and the runs start at
/// once: no dispatcher wake-up, no second round trip.
pub(crate) async fn store_submissions(
    inner: &Arc<Inner>,
    tasks: Vec<baton_core::task::NewTask>,
) -> Result<Vec<baton_store::CreateOutcome>, baton_store::StoreError> {
    let mut permits = Vec::new();
    if inner.config.run_workers && !inner.stop_claiming.is_cancelled() {
        permits = reserve_slots(inner);
    }
    let t = std::time::Instant::now();
    let n = tasks.len();
    let now = inner.clock.now();
    let (limits, rates) = claim_limits(inner);
    let token = new_token();
    let claim = (!permits.is_empty()).then(|| ClaimRequest {
        owner: &inner.config.node_id,
        limit: permits.len(),
        now,
        lease_until: now.saturating_add(inner.config.lease),
        token,
        limits: &limits,
        rates: &rates,
        group_max: inner.config.group_max,
    });
    let asked = permits.len();
    let r = inner.store.create_and_claim(tasks, claim).await?;
    crate::metrics::committed(n, t.elapsed());
    for o in &r.outcomes {
        if let baton_store::CreateOutcome::Created(task) = o {
            crate::metrics::submitted(&task.tool, &task.queue);
            crate::metrics::cache_lookup(task);
            if task.cached_from.is_some() {
                let price = inner.config.price_of(&task.tool);
                crate::metrics::cache_saved(&task.tool, task.result.as_ref(), price);
            }
        }
    }
    tracing::debug!(
        n,
        claimed = r.claimed.len(),
        ms = t.elapsed().as_secs_f64() * 1e3,
        "create"
    );
    // A claim that used every free slot may have left due tasks behind.
    let more = r.claimed.len() == asked;
    if more {
        inner.publisher.backlog.store(true, Ordering::Relaxed);
    }
    inner.publisher.publish_with(&r.events, more);
    for task in r.claimed {
        let permit = permits.pop().expect("a slot per claimed task");
        inner
            .runs
            .spawn(run_task(inner.clone(), task, token, permit));
    }
    Ok(r.outcomes)
}

pub(crate) async fn dispatcher(inner: Arc<Inner>) {
    let cfg = &inner.config;
    let mut backoff = Duration::from_millis(50);
    loop {
        if inner.stop_claiming.is_cancelled() {
            break;
        }
        // Reserve the slots before claiming: submissions claim for free slots too.
        let mut permits = reserve_slots(&inner);
        if permits.is_empty() {
            tokio::select! {
                _ = inner.wake.notified() => {}
                _ = inner.stop_claiming.cancelled() => break,
            }
            continue;
        }
        let want = permits.len();
        let now = inner.clock.now();
        let (limits, rates) = claim_limits(&inner);
        inner.publisher.backlog.store(false, Ordering::Relaxed);
        let req = ClaimRequest {
            owner: &cfg.node_id,
            limit: want,
            now,
            lease_until: now.saturating_add(cfg.lease),
            token: new_token(),
            limits: &limits,
            rates: &rates,
            group_max: inner.config.group_max,
        };
        let t = std::time::Instant::now();
        match inner.store.claim(&req).await {
            Ok((tasks, events)) => {
                tracing::debug!(
                    want,
                    got = tasks.len(),
                    ms = t.elapsed().as_secs_f64() * 1e3,
                    "claim"
                );
                backoff = Duration::from_millis(50);
                inner.publisher.publish(&events);
                let got = tasks.len();
                for task in tasks {
                    let permit = permits.pop().expect("a slot per claimed task");
                    let token = req.token;
                    inner
                        .runs
                        .spawn(run_task(inner.clone(), task, token, permit));
                }
                if got == want {
                    inner.publisher.backlog.store(true, Ordering::Relaxed);
                    continue;
                }
                tokio::select! {
                    _ = inner.wake.notified() => {}
                    _ = tokio::time::sleep(poll_after(cfg.poll_interval, &rates)) => {}
                    _ = inner.stop_claiming.cancelled() => break,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "could not claim tasks");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = inner.stop_claiming.cancelled() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Runs a claimed task inside a `task.run` span that joins the trace of the request that
/// made the task (its stored `traceparent`), after a `task.claim` span marking the claim.
async fn run_task(inner: Arc<Inner>, task: Task, token: i64, permit: OwnedSemaphorePermit) {
    let wait_ms = task
        .started_at
        .map_or(0, |s| s.millis_since(task.run_at.min(s)));
    let claim = tracing::info_span!(
        "task.claim",
        otel.name = %format!("claim {}", task.tool),
        task.id = %task.id,
        task.tool = %task.tool,
        task.queue = %task.queue,
        task.wait_ms = wait_ms,
    );
    let run = tracing::info_span!(
        "task.run",
        otel.name = %format!("run {}", task.tool),
        task.id = %task.id,
        task.tool = %task.tool,
        task.queue = %task.queue,
        task.attempt = task.attempt,
        task.status = tracing::field::Empty,
    );
    if let Some(tp) = &task.trace_parent {
        crate::trace::set_parent(&claim, tp);
        crate::trace::set_parent(&run, tp);
    }
    drop(claim);
    run_task_traced(inner, task, token, permit)
        .instrument(run)
        .await
}

async fn run_task_traced(inner: Arc<Inner>, task: Task, token: i64, permit: OwnedSemaphorePermit) {
    let cancel = CancellationToken::new();
    if task.cancel_requested {
        cancel.cancel();
    }
    inner.running.start(task.id, token, cancel.clone());
    crate::metrics::started(&task);
    let outcome = execute(&inner, &task, token, &cancel).await.map(storable);
    // A slot is a tool running; the tool is done, so the dispatcher may start the next
    // one while this outcome is group-committed (the lease is held until then). Limits
    // can hold tasks back without a backlog showing, so they always wake it.
    drop(permit);
    if inner.publisher.backlog.load(Ordering::Relaxed) || has_claim_limits(&inner) {
        inner.wake.notify_one();
    }
    // A large result goes to object storage (the task keeps a reference); one over the
    // limit fails the task rather than being stored cut short.
    let outcome = match outcome {
        Some(Outcome::Completed(result)) => Some(
            match crate::payloads::offload(&inner.config.payloads, task.id, task.attempt, result)
                .await
            {
                Ok(kept) => Outcome::Completed(kept),
                Err(e) => Outcome::Failed(e),
            },
        ),
        other => other,
    };
    if let Some(outcome) = outcome {
        let now = inner.clock.now();
        let transition = policy::decide(
            outcome,
            task.attempt,
            task.max_attempts,
            &inner.config.retry,
            now,
            rand::random::<f64>(),
        );
        // The run's log goes in before its outcome: a reader that saw the task end has
        // seen its whole log.
        flush_logs(&inner).await;
        let status = transition.status();
        tracing::Span::current().record("task.status", status.as_str());
        let finishing = tracing::info_span!(
            "task.finish",
            otel.name = %format!("finish {}", task.tool),
            task.id = %task.id,
            task.status = status.as_str(),
        );
        let result = match &transition {
            policy::Transition::Complete { result } => Some(result.clone()),
            _ => None,
        };
        let finish = Finish {
            id: task.id,
            token,
            transition,
            at: now,
        };
        // While the store is unreachable the outcome is kept and written again: the task
        // stays registered as running here, so heartbeats keep its lease once the store
        // is back, and the work is not lost. Past a few leases it is given up (the task
        // will have been rescued and will run again).
        let give_up = tokio::time::Instant::now() + inner.config.lease.saturating_mul(4);
        let mut backoff = Duration::from_millis(200);
        loop {
            let written = inner
                .finisher
                .run(vec![finish.clone()])
                .instrument(finishing.clone())
                .await;
            match written {
                Ok(Ok(out)) => {
                    if out.first() == Some(&FinishOutcome::LeaseLost) {
                        tracing::warn!(task_id = %task.id, tool = %task.tool, "lease lost before the run finished; its outcome was discarded");
                    } else {
                        crate::metrics::run_ended(
                            &task,
                            status,
                            now,
                            result.as_ref(),
                            inner.config.price_of(&task.tool),
                        );
                        // Identical calls may be waiting for this one's result.
                        if task.cache_key.is_some() && status.is_final() {
                            crate::cache::settle(&inner, &task).await;
                        }
                    }
                }
                Ok(Err(e))
                    if e.code() == baton_core::ErrorCode::Unavailable
                        && tokio::time::Instant::now() < give_up
                        && !inner.hard_stop.is_cancelled() =>
                {
                    tracing::warn!(task_id = %task.id, error = %e, retry_in_ms = backoff.as_millis() as u64, "could not record the outcome yet; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = inner.hard_stop.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::error!(task_id = %task.id, error = %e, "could not record the outcome; the lease will expire and the task will run again");
                }
                Err(_) => {
                    tracing::error!(task_id = %task.id, "engine stopped before the outcome was recorded; the task will run again");
                }
            }
            break;
        }
    }
    inner.running.end(task.id, token);
}

/// Runs the tool. `None` means the node is stopping and the task is handed back unfinished.
async fn execute(
    inner: &Inner,
    task: &Task,
    token: i64,
    cancel: &CancellationToken,
) -> Option<Outcome> {
    if cancel.is_cancelled() {
        return Some(Outcome::Cancelled);
    }
    let Some(resolved) = inner.tools.resolve(&task.tool) else {
        // Accepted while its server was connecting, and the server has no such tool:
        // retrying cannot help.
        if inner.tools.lacks(&task.tool) {
            return Some(Outcome::Failed(TaskError::new(
                "unknown_tool",
                format!(
                    "unknown tool `{}`{}",
                    task.tool,
                    inner.tools.suggest(&task.tool)
                ),
                false,
            )));
        }
        return Some(Outcome::Failed(TaskError::new(
            "unknown_tool",
            format!("tool `{}` is not available on this node", task.tool),
            true,
        )));
    };
    let ctx = ToolContext {
        task_id: task.id,
        attempt: task.attempt,
        cancel: cancel.clone(),
        progress: ProgressReporter::new(
            inner.progress.clone(),
            inner.clock.clone(),
            task.id,
            token,
        ),
        checkpoint: task.checkpoint.clone(),
        task: TaskHandle::new(inner, task.id, token, task.attempt),
    };
    let call = resolved
        .provider
        .call(&resolved.info.name, task.arguments.clone(), ctx);
    tokio::pin!(call);
    let timeout = task.timeout_ms.map(Duration::from_millis);
    let deadline = async {
        match timeout {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let grace = inner.config.cancel_grace;
    tokio::select! {
        result = &mut call => Some(match result {
            Ok(out) => completed(out),
            Err(_) if cancel.is_cancelled() => Outcome::Cancelled,
            Err(e) => Outcome::Failed(e.into()),
        }),
        _ = &mut deadline => {
            cancel.cancel();
            // Let the tool wind down (and, for upstreams, send its cancellation on).
            let _ = tokio::time::timeout(grace, &mut call).await;
            let ms = timeout.map_or(0, |d| d.as_millis());
            Some(Outcome::Failed(TaskError::new(
                "timeout",
                format!("the tool did not finish within its timeout of {ms} ms"),
                true,
            )))
        }
        _ = cancel.cancelled() => {
            tokio::select! {
                r = tokio::time::timeout(grace, &mut call) => Some(match r {
                    // It finished anyway: the result is real, keep it.
                    Ok(Ok(out)) if !out.is_error() => Outcome::Completed(out.0),
                    _ => Outcome::Cancelled,
                }),
                _ = inner.hard_stop.cancelled() => None,
            }
        }
        _ = inner.hard_stop.cancelled() => None,
    }
}

/// The outcome as the store can hold it (see [`baton_core::value`]): a result nesting
/// too deep to read back fails the task instead of being stored; an error's data that
/// does is dropped from the error.
fn storable(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Completed(result) => match baton_core::value::check_json(&result) {
            Ok(()) => Outcome::Completed(result),
            Err(m) => Outcome::Failed(TaskError::new(
                "invalid_result",
                format!("the tool's result {m}"),
                false,
            )),
        },
        Outcome::Failed(mut e) => {
            if e.data
                .as_ref()
                .is_some_and(|d| baton_core::value::check_json(d).is_err())
            {
                e.data = None;
            }
            Outcome::Failed(e)
        }
        other => other,
    }
}

fn completed(out: ToolOutput) -> Outcome {
    if out.is_error() {
        let message = out
            .first_text()
            .unwrap_or("the tool reported an error")
            .to_string();
        let mut err = TaskError::new("tool_error", message, false);
        err.data = Some(out.0);
        Outcome::Failed(err)
    } else {
        Outcome::Completed(out.0)
    }
}

/// Extends this node's leases and picks up cancellations requested through other nodes.
pub(crate) async fn heartbeat_loop(inner: Arc<Inner>) {
    let cfg = &inner.config;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.heartbeat) => {}
            _ = inner.stop_background.cancelled() => break,
        }
        if inner.running.len() == 0 {
            continue;
        }
        let now = inner.clock.now();
        let began = tokio::time::Instant::now();
        match inner
            .store
            .heartbeat(&cfg.node_id, now, now.saturating_add(cfg.lease))
            .await
        {
            Ok(reply) => {
                for id in reply.cancel_requested {
                    inner.running.cancel_task(id);
                }
                // A lease that expired (this node was stalled) is lost even if nobody has
                // taken the task yet.
                inner
                    .running
                    .stop_lost(&reply.held.into_iter().collect(), began);
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed; leases will expire if this persists")
            }
        }
    }
}

/// Writes buffered progress every `progress_flush`.
pub(crate) async fn progress_loop(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.config.progress_flush) => {}
            _ = inner.stop_background.cancelled() => break,
        }
        flush_progress(&inner).await;
        flush_logs(&inner).await;
    }
}

/// Writes buffered log lines; on a store error they are kept for the next flush.
pub(crate) async fn flush_logs(inner: &Inner) {
    let lines = inner.logs.take();
    if lines.is_empty() {
        return;
    }
    if let Err(e) = inner
        .store
        .append_logs(lines.clone(), inner.config.log_keep)
        .await
    {
        tracing::warn!(error = %e, lines = lines.len(), "could not store log lines yet");
        inner.logs.restore(lines);
    }
}

pub(crate) async fn flush_progress(inner: &Inner) {
    let updates = inner.progress.take();
    if updates.is_empty() {
        return;
    }
    let n = updates.len();
    match inner.store.record_progress(updates).await {
        Ok(events) => inner.publisher.publish(&events),
        Err(e) => tracing::warn!(error = %e, dropped = n, "could not record progress"),
    }
}
