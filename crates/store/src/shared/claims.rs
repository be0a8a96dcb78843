//! Claims: leasing runnable tasks to a worker, within concurrency limits and rate limits.
//!
//! Without limits a claim is one statement of the backend ([`ClaimWrites::lease_next`]).
//! With limits, each limit's free room is counted first: a concurrency limit's from what
//! runs now, a rate limit's from the tokens its bucket holds now. Then candidates are
//! taken in greedy rounds: the best runnable candidates that no full limit covers; a
//! candidate that would overfill a limit fills it, and the next round excludes that
//! limit's tools. A group (owner and group key) with `group_max` tasks running or chosen
//! is full the same way. Each round fills the batch, runs out of candidates, or fills
//! one more limit or group. The buckets of the rate limits that let
//! tasks through are then debited in the same transaction.

use std::collections::HashMap;

use baton_core::event::NewEvent;
use baton_core::task::NewTask;
use baton_core::{EventKind, Task, TaskEvent, TaskStatus, Timestamp};

use super::dialect::{Bind, Tx, execute, query};
use super::tasks::{TaskWrites, insert_tasks};
use crate::{
    ClaimRequest, ConcurrencyLimit, CreatedAndClaimed, RateBucket, StoreResult, ToolSelector,
};

/// The claim writes of a backend, inside one write transaction.
pub(crate) trait ClaimWrites: Tx {
    /// How many tasks of each tool run now. A backend shared by several processes also
    /// makes sure here that no other limited claim counts at the same time.
    async fn running_per_tool(&mut self) -> StoreResult<Vec<(String, i64)>>;

    /// How many tasks of each group (owner, group key) run now (called after
    /// [`running_per_tool`](Self::running_per_tool)).
    async fn running_per_group(&mut self) -> StoreResult<Vec<(String, String, i64)>>;

    /// The candidates of one round, in claim order.
    async fn candidates(&mut self, round: &Round<'_>) -> StoreResult<Vec<Candidate>>;

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
/// order (highest priority, then fair key (see `Task::fair_key`), then earliest
/// `run_at`, then oldest), none of a tool
/// `excluded` covers, none of `chosen`.
pub(crate) struct Round<'a> {
    pub(crate) now: Timestamp,
    pub(crate) excluded: Vec<&'a ToolSelector>,
    /// Groups (owner, group key) with no room left.
    pub(crate) excluded_groups: &'a [(String, String)],
    pub(crate) chosen: &'a [i64],
    pub(crate) want: usize,
}

/// A task a limited claim may take.
pub(crate) struct Candidate {
    pub(crate) seq: i64,
    pub(crate) tool: String,
    pub(crate) owner: String,
    pub(crate) group_key: String,
}

/// Most rounds of one claim: with many full groups a claim may take fewer tasks than it
/// could, never more than it may; the next claim goes on.
const MAX_ROUNDS: usize = 32;

/// Claims and appends the `started` events.
pub(crate) async fn claim<T: ClaimWrites>(
    tx: &mut T,
    req: &ClaimRequest<'_>,
) -> StoreResult<(Vec<Task>, Vec<TaskEvent>)>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
{
    let (claimed, events) = claim_deferred(tx, req).await?;
    Ok((claimed, tx.insert_events(events).await?))
}

/// Stores new tasks and, in the same transaction, claims (see
/// [`Store::create_and_claim`](crate::Store::create_and_claim)).
pub(crate) async fn create_and_claim<T: TaskWrites + ClaimWrites>(
    tx: &mut T,
    tasks: &[NewTask],
    claim: Option<&ClaimRequest<'_>>,
) -> StoreResult<CreatedAndClaimed>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
{
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
) -> StoreResult<(Vec<Task>, Vec<NewEvent>)>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
{
    if req.limit == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    if req.limits.is_empty() && req.rates.is_empty() && req.group_max.is_none() {
        let claimed = tx.lease_next(req).await?;
        return Ok(started(req, claimed));
    }
    let running = tx.running_per_tool().await?;
    // Read after `running_per_tool`, so under the same exclusion.
    let buckets = if req.rates.is_empty() {
        Vec::new()
    } else {
        rate_buckets(tx.exec()).await?
    };
    // One gate per limit: its tools and how many more of them may start now.
    let mut gates: Vec<(&ToolSelector, u32)> = req
        .limits
        .iter()
        .map(|l| (&l.selector, concurrency_room(l, &running)))
        .collect();
    let rate_tokens: Vec<RateBucket> = req
        .rates
        .iter()
        .map(|r| r.refill(buckets.iter().find(|b| b.key == r.key()), req.now))
        .collect();
    gates.extend(
        req.rates
            .iter()
            .zip(&rate_tokens)
            .map(|(r, b)| (&r.selector, b.whole_tokens())),
    );
    // Per group, how many run (then: run or are chosen).
    let mut in_group: HashMap<(String, String), u32> = HashMap::new();
    if req.group_max.is_some() {
        for (owner, group, n) in tx.running_per_group().await? {
            in_group.insert((owner, group), u32::try_from(n).unwrap_or(u32::MAX));
        }
    }
    let group_max = req.group_max.unwrap_or(u32::MAX);
    let mut full_groups: Vec<(String, String)> = Vec::new();
    let mut chosen: Vec<i64> = Vec::with_capacity(req.limit);
    for _ in 0..MAX_ROUNDS {
        let want = req.limit - chosen.len();
        let round = Round {
            now: req.now,
            excluded: gates
                .iter()
                .filter(|(_, room)| *room == 0)
                .map(|(sel, _)| *sel)
                .collect(),
            excluded_groups: &full_groups,
            chosen: &chosen,
            want,
        };
        let rows = tx.candidates(&round).await?;
        let fetched = rows.len();
        let mut filled_one = false;
        let mut newly_full = Vec::new();
        for c in rows {
            let matching: Vec<usize> = (0..gates.len())
                .filter(|&i| gates[i].0.matches(&c.tool))
                .collect();
            let group = (c.owner, c.group_key);
            let group_used = in_group.get(&group).copied().unwrap_or(0);
            if matching.iter().any(|&i| gates[i].1 == 0) || group_used >= group_max {
                if group_used >= group_max && !newly_full.contains(&group) {
                    newly_full.push(group);
                }
                filled_one = true;
                continue;
            }
            for i in matching {
                gates[i].1 -= 1;
            }
            if req.group_max.is_some() {
                in_group.insert(group, group_used + 1);
            }
            chosen.push(c.seq);
        }
        full_groups.extend(newly_full);
        if chosen.len() >= req.limit || fetched < want || !filled_one {
            break;
        }
    }
    if chosen.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let claimed = tx.lease_chosen(req, &chosen).await?;
    for (rate, mut bucket) in req.rates.iter().zip(rate_tokens) {
        let used = claimed
            .iter()
            .filter(|t| rate.selector.matches(&t.tool))
            .count();
        if used > 0 {
            bucket.milli_tokens -= used as i64 * 1000;
            save_rate_bucket(tx, &bucket).await?;
        }
    }
    Ok(started(req, claimed))
}

/// Writes a bucket's new state.
async fn save_rate_bucket<T: Tx>(tx: &mut T, b: &RateBucket) -> StoreResult<()>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>(
        "INSERT INTO rate_buckets (key, milli_tokens, at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET milli_tokens = excluded.milli_tokens, at = excluded.at",
    )
    .bind(b.key.clone())
    .bind(b.milli_tokens)
    .bind(b.at.as_millis());
    execute(tx.exec(), q).await?;
    Ok(())
}

/// See [`Store::rate_buckets`](crate::Store::rate_buckets).
pub(crate) async fn rate_buckets<'c, D: super::dialect::Dialect>(
    db: impl sqlx::Executor<'c, Database = D>,
) -> StoreResult<Vec<RateBucket>> {
    super::dialect::fetch_all(
        db,
        sqlx::query("SELECT key, milli_tokens, at FROM rate_buckets"),
        super::rows::rate_bucket_from_row,
    )
    .await
}

/// Free room of a concurrency limit, from the running tasks per tool.
fn concurrency_room(limit: &ConcurrencyLimit, running: &[(String, i64)]) -> u32 {
    let used: i64 = running
        .iter()
        .filter(|(t, _)| limit.selector.matches(t))
        .map(|(_, n)| n)
        .sum();
    limit
        .max
        .saturating_sub(u32::try_from(used).unwrap_or(u32::MAX))
}

/// The claimed tasks in claim order (`RETURNING` has none) and their `started` events.
fn started(req: &ClaimRequest<'_>, mut claimed: Vec<Task>) -> (Vec<Task>, Vec<NewEvent>) {
    claimed.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.fair_key.cmp(&b.fair_key))
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
