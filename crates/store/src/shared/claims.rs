//! Claims: leasing runnable tasks to a worker, within concurrency limits.
//!
//! Without limits a claim is one statement of the backend ([`ClaimWrites::lease_next`]).
//! With limits, the free capacity of each limit is counted from what runs now, then
//! candidates are taken in greedy rounds: the best runnable candidates that no
//! saturated limit covers; a candidate that would overfill a limit saturates it, and the
//! next round excludes that limit's tools. Each round fills the batch, runs out of
//! candidates, or saturates one more limit, so there are at most `limits + 1`.

use baton_core::event::NewEvent;
use baton_core::task::NewTask;
use baton_core::{EventKind, Task, TaskEvent, TaskStatus, Timestamp};

use super::dialect::Tx;
use super::tasks::{TaskWrites, insert_tasks};
use crate::{ClaimRequest, ConcurrencyLimit, CreatedAndClaimed, StoreResult, ToolSelector};

/// The claim writes of a backend, inside one write transaction.
pub(crate) trait ClaimWrites: Tx {
    /// How many tasks of each tool run now. A backend shared by several processes also
    /// makes sure here that no other limited claim counts at the same time.
    async fn running_per_tool(&mut self) -> StoreResult<Vec<(String, i64)>>;

    /// The candidates of one round (`seq`, `tool`), in claim order.
    async fn candidates(&mut self, round: &Round<'_>) -> StoreResult<Vec<(i64, String)>>;

    /// Leases the `chosen` tasks (by `seq`) that are still pending.
    async fn lease_chosen(
        &mut self,
        req: &ClaimRequest<'_>,
        chosen: &[i64],
    ) -> StoreResult<Vec<Task>>;

    /// Leases the best `req.limit` runnable tasks (no concurrency limits).
    async fn lease_next(&mut self, req: &ClaimRequest<'_>) -> StoreResult<Vec<Task>>;
}

/// One greedy round of a limited claim: up to `want` tasks runnable at `now`, in claim
/// order (highest priority, then earliest `run_at`, then oldest), none of a tool
/// `excluded` covers, none of `chosen`.
pub(crate) struct Round<'a> {
    pub(crate) now: Timestamp,
    pub(crate) excluded: Vec<&'a ToolSelector>,
    pub(crate) chosen: &'a [i64],
    pub(crate) want: usize,
}

/// Claims and appends the `started` events.
pub(crate) async fn claim<T: ClaimWrites>(
    tx: &mut T,
    req: &ClaimRequest<'_>,
) -> StoreResult<(Vec<Task>, Vec<TaskEvent>)> {
    let (claimed, events) = claim_deferred(tx, req).await?;
    Ok((claimed, tx.insert_events(events).await?))
}

/// Stores new tasks and, in the same transaction, claims (see
/// [`Store::create_and_claim`](crate::Store::create_and_claim)).
pub(crate) async fn create_and_claim<T: TaskWrites + ClaimWrites>(
    tx: &mut T,
    tasks: &[NewTask],
    claim: Option<&ClaimRequest<'_>>,
) -> StoreResult<CreatedAndClaimed> {
    let (outcomes, mut events) = insert_tasks(tx, tasks).await?;
    let mut claimed = Vec::new();
    if let Some(req) = claim {
        let (tasks, started) = claim_deferred(tx, req).await?;
        claimed = tasks;
        events.extend(started);
    }
    // One statement for the created and started events alike.
    let events = tx.insert_events(events).await?;
    Ok(CreatedAndClaimed {
        outcomes,
        events,
        claimed,
    })
}

/// Claims; the `started` events are returned for the caller to append.
async fn claim_deferred<T: ClaimWrites>(
    tx: &mut T,
    req: &ClaimRequest<'_>,
) -> StoreResult<(Vec<Task>, Vec<NewEvent>)> {
    if req.limit == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    if req.limits.is_empty() {
        let claimed = tx.lease_next(req).await?;
        return Ok(started(req, claimed));
    }
    let running = tx.running_per_tool().await?;
    let mut room = free_room(req.limits, &running);
    let mut chosen: Vec<i64> = Vec::with_capacity(req.limit);
    loop {
        let want = req.limit - chosen.len();
        let round = Round {
            now: req.now,
            excluded: req
                .limits
                .iter()
                .zip(&room)
                .filter(|(_, r)| **r == 0)
                .map(|(l, _)| &l.selector)
                .collect(),
            chosen: &chosen,
            want,
        };
        let rows = tx.candidates(&round).await?;
        let fetched = rows.len();
        let mut saturated_one = false;
        for (seq, tool) in rows {
            let matching: Vec<usize> = req
                .limits
                .iter()
                .enumerate()
                .filter(|(_, l)| l.selector.matches(&tool))
                .map(|(i, _)| i)
                .collect();
            if matching.iter().any(|&i| room[i] == 0) {
                saturated_one = true;
                continue;
            }
            for i in matching {
                room[i] -= 1;
            }
            chosen.push(seq);
        }
        if chosen.len() >= req.limit || fetched < want || !saturated_one {
            break;
        }
    }
    if chosen.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let claimed = tx.lease_chosen(req, &chosen).await?;
    Ok(started(req, claimed))
}

/// Free capacity of each concurrency limit, from the running tasks per tool.
fn free_room(limits: &[ConcurrencyLimit], running: &[(String, i64)]) -> Vec<u32> {
    limits
        .iter()
        .map(|l| {
            let used: i64 = running
                .iter()
                .filter(|(t, _)| l.selector.matches(t))
                .map(|(_, n)| n)
                .sum();
            l.max
                .saturating_sub(u32::try_from(used).unwrap_or(u32::MAX))
        })
        .collect()
}

/// The claimed tasks in claim order (`RETURNING` has none) and their `started` events.
fn started(req: &ClaimRequest<'_>, mut claimed: Vec<Task>) -> (Vec<Task>, Vec<NewEvent>) {
    claimed.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.seq.cmp(&b.seq))
    });
    let events = claimed
        .iter()
        .map(|t| {
            let mut ev = NewEvent::new(t.id, req.now, EventKind::Started, TaskStatus::Running);
            ev.attempt = Some(t.attempt);
            ev
        })
        .collect();
    (claimed, events)
}
