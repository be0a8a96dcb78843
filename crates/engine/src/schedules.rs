//! Schedules: a task or a workflow submitted on a cron, per principal.
//!
//! Every process with an API (role `node` or `api`) runs [`scheduler_loop`]: it sleeps
//! until the earliest next tick (at
//! most a second, so changes made on other nodes are seen), then fires what is due. A tick
//! is fired by submitting the schedule's task with an idempotency key made from the
//! schedule and the tick, then moving the schedule's next tick on only from the value it
//! read: processes that race on a tick store one task, and a process that dies between
//! the two steps finds the tick still due and its task already there. A workflow has no
//! idempotency key: its id is derived from the schedule and the tick instead, so a second
//! submission of the tick is refused by the store's key. So each tick fires once across
//! a cluster and across restarts.
//!
//! After downtime (a tick more than [`LATE`] behind), `catch_up` decides: `none` skips
//! the missed ticks, `latest` fires the latest of them once. With `overlap: skip`, a tick
//! whose previous run is still open is skipped (no pile-up on a paused queue).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use baton_core::submit::SubmitRequest;
use baton_core::{TaskId, Timestamp};
use baton_store::{ScheduleRun, StoredSchedule};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::inner::Inner;
use crate::{Engine, EngineError};
use baton_core::submit::InvalidRequest;

/// A tick this far behind now counts as missed (downtime), not merely late.
const LATE: Duration = Duration::from_secs(5);
/// Longest the scheduler sleeps without looking at the store.
const POLL: Duration = Duration::from_secs(1);
/// Next fire times a view shows.
const NEXT_RUNS: usize = 5;

/// What a tick does while the schedule's previous run is still open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Submit anyway.
    #[default]
    Allow,
    /// Skip the tick.
    Skip,
}

/// What happens to ticks missed while no process ran (downtime).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Skip them; go on from the next tick.
    #[default]
    None,
    /// Fire the latest of them once.
    Latest,
}

impl Overlap {
    fn as_str(self) -> &'static str {
        match self {
            Overlap::Allow => "allow",
            Overlap::Skip => "skip",
        }
    }
}

impl CatchUp {
    fn as_str(self) -> &'static str {
        match self {
            CatchUp::None => "none",
            CatchUp::Latest => "latest",
        }
    }
}

/// A new schedule: the body of `POST /v1/schedules`, the arguments of the MCP tool
/// `schedule_create`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// Unique among the caller's schedules: letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// Five fields (minute, hour, day of month, month, day of week) or six with seconds
    /// first, e.g. `0 9 * * MON-FRI` or `*/10 * * * * *`; `@hourly`, `@daily` and the like.
    pub cron: String,
    /// IANA time zone the cron is read in, e.g. `Europe/Paris`. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The task each tick submits: the body of `POST /v1/tasks`. Give this or `workflow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<SubmitRequest>,
    /// The workflow each tick starts: a definition as `POST /v1/workflows` takes it (a
    /// JSON object, or YAML text in a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Value>,
    /// `allow` (default) or `skip` a tick while the previous run is still open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    /// After downtime: `none` (default) skips missed ticks, `latest` fires the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUp>,
    /// Created paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// A change to a schedule: the body of `PATCH /v1/schedules/{name}`; what is absent stays.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<SubmitRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ScheduleView {
    pub name: String,
    pub cron: String,
    /// The cron in words.
    pub description: String,
    pub timezone: String,
    /// The task each tick submits (for a task schedule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<Value>,
    /// The workflow definition each tick starts (for a workflow schedule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Value>,
    pub overlap: Overlap,
    pub catch_up: CatchUp,
    pub paused: bool,
    /// The next times it fires (none while paused).
    pub next_runs: Vec<Timestamp>,
    /// The last tick that fired, and the task or workflow it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_fired_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_workflow_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Every schedule of the caller.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScheduleList {
    pub schedules: Vec<ScheduleView>,
}

/// A tick that fired and the task or workflow it made.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ScheduleRunView {
    pub tick_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
}

/// What a schedule submits. Stored as the JSON of the task's submission, or as
/// `{"workflow": definition}` (a submission always has a `tool` and never a `workflow`).
enum Target {
    Task(Box<SubmitRequest>),
    Workflow(Box<baton_workflow::Definition>),
}

impl Target {
    /// From a request's `task` and `workflow` (exactly one of them).
    fn from_request(
        task: Option<SubmitRequest>,
        workflow: Option<Value>,
    ) -> Result<Target, InvalidRequest> {
        match (task, workflow) {
            (Some(t), None) => Ok(Target::Task(Box::new(t))),
            (None, Some(w)) => {
                let text = match &w {
                    Value::String(yaml) => yaml.clone(),
                    Value::Object(_) => w.to_string(),
                    other => {
                        return Err(InvalidRequest::new(
                            "workflow",
                            format!(
                                "must be a definition (an object, or YAML text), got {}",
                                baton_core::submit::json_type(other)
                            ),
                        ));
                    }
                };
                let def = baton_workflow::Definition::parse(&text)
                    .map_err(|e| InvalidRequest::new("workflow", e.to_string()))?;
                Ok(Target::Workflow(Box::new(def)))
            }
            (Some(_), Some(_)) => Err(InvalidRequest::new(
                "workflow",
                "give either `task` or `workflow`, not both",
            )),
            (None, None) => Err(InvalidRequest::new(
                "task",
                "give the `task` (or the `workflow`) each tick submits",
            )),
        }
    }

    fn stored(text: &str) -> Result<Target, EngineError> {
        let bad =
            |e: String| EngineError::Invalid(InvalidRequest::new("task", format!("stored: {e}")));
        let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        match v.get("workflow") {
            Some(w) => serde_json::from_value(w.clone())
                .map(|d| Target::Workflow(Box::new(d)))
                .map_err(|e| bad(e.to_string())),
            None => serde_json::from_value(v)
                .map(|t| Target::Task(Box::new(t)))
                .map_err(|e| bad(e.to_string())),
        }
    }

    fn to_stored(&self) -> String {
        match self {
            Target::Task(t) => serde_json::to_string(t).unwrap_or_default(),
            Target::Workflow(d) => serde_json::json!({ "workflow": d }).to_string(),
        }
    }

    fn is_workflow(&self) -> bool {
        matches!(self, Target::Workflow(_))
    }
}

/// A run's id as the API shows it: a task id, or `wf-<id>` for a workflow schedule.
fn run_ids(workflow: bool, id: TaskId) -> (Option<String>, Option<String>) {
    if workflow {
        (None, Some(format!("wf-{id}")))
    } else {
        (Some(id.to_string()), None)
    }
}

/// The runs of a schedule, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScheduleRuns {
    pub name: String,
    pub runs: Vec<ScheduleRunView>,
}

/// A parsed cron and zone.
struct Timing {
    cron: Cron,
    tz: Tz,
}

impl Timing {
    fn parse(cron: &str, timezone: &str) -> Result<Timing, InvalidRequest> {
        let parsed = Cron::from_str(cron)
            .map_err(|e| InvalidRequest::new("cron", format!("`{cron}` is not a cron: {e}")))?;
        let tz = Tz::from_str(timezone).map_err(|_| {
            InvalidRequest::new(
                "timezone",
                format!("unknown time zone `{timezone}`; use an IANA name such as Europe/Paris"),
            )
        })?;
        Ok(Timing { cron: parsed, tz })
    }

    fn of(s: &StoredSchedule) -> Result<Timing, InvalidRequest> {
        Timing::parse(&s.cron, &s.timezone)
    }

    fn local(&self, t: Timestamp) -> DateTime<Tz> {
        self.tz.from_utc_datetime(&t.to_datetime().naive_utc())
    }

    /// The first tick strictly after `t`.
    fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let next = self.cron.find_next_occurrence(&self.local(t), false).ok()?;
        Some(Timestamp::from_millis(
            next.with_timezone(&Utc).timestamp_millis(),
        ))
    }

    /// The last tick at or before `t`.
    fn latest_at(&self, t: Timestamp) -> Option<Timestamp> {
        let prev = self
            .cron
            .find_previous_occurrence(&self.local(t), true)
            .ok()?;
        Some(Timestamp::from_millis(
            prev.with_timezone(&Utc).timestamp_millis(),
        ))
    }

    fn upcoming(&self, from: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n);
        let mut t = from;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }
}

/// A far-future tick for a cron that never fires again (it has a year in the past).
fn never() -> Timestamp {
    Timestamp::from_millis(i64::MAX / 2)
}

fn view(s: &StoredSchedule) -> ScheduleView {
    let timing = Timing::of(s).ok();
    let target = Target::stored(&s.task).ok();
    let is_workflow = target.as_ref().is_some_and(Target::is_workflow);
    let (task, workflow) = match target {
        Some(Target::Task(t)) => (serde_json::to_value(t).ok(), None),
        Some(Target::Workflow(d)) => (None, serde_json::to_value(d).ok()),
        None => (None, None),
    };
    let (last_task_id, last_workflow_id) = match s.last_task_id {
        Some(id) => run_ids(is_workflow, id),
        None => (None, None),
    };
    let next_runs = match (&timing, s.paused) {
        (Some(t), false) => {
            let mut runs = vec![s.next_at];
            runs.extend(t.upcoming(s.next_at, NEXT_RUNS - 1));
            runs.retain(|r| *r < never());
            runs
        }
        _ => Vec::new(),
    };
    ScheduleView {
        name: s.name.clone(),
        cron: s.cron.clone(),
        description: timing.map(|t| t.cron.describe()).unwrap_or_default(),
        timezone: s.timezone.clone(),
        task,
        workflow,
        overlap: if s.overlap == "skip" {
            Overlap::Skip
        } else {
            Overlap::Allow
        },
        catch_up: if s.catch_up == "latest" {
            CatchUp::Latest
        } else {
            CatchUp::None
        },
        paused: s.paused,
        next_runs,
        last_fired_at: s.last_at,
        last_task_id,
        last_workflow_id,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

impl Engine {
    /// Checks a submission a schedule will make, as `POST /v1/tasks` would (the tool is
    /// known, the arguments fit its schema), without storing it; it must leave the
    /// idempotency key to the schedule.
    fn check_target(&self, owner: &str, target: &Target) -> Result<(), EngineError> {
        match target {
            Target::Task(t) => self.check_scheduled_task(owner, t),
            Target::Workflow(d) => self.check_workflow(d),
        }
    }

    fn check_scheduled_task(&self, owner: &str, task: &SubmitRequest) -> Result<(), EngineError> {
        if task.idempotency_key.is_some() {
            return Err(InvalidRequest::new(
                "task.idempotency_key",
                "a schedule makes its own key per tick; leave it out",
            )
            .into());
        }
        let mut probe = task.clone();
        probe.idempotency_key = None;
        self.prepare(owner, probe).map(|_| ()).map_err(|e| match e {
            EngineError::Invalid(i) => {
                EngineError::Invalid(InvalidRequest::new(format!("task.{}", i.field), i.message))
            }
            other => other,
        })
    }

    pub async fn create_schedule(
        &self,
        owner: &str,
        req: ScheduleRequest,
    ) -> Result<ScheduleView, EngineError> {
        baton_core::tool::validate_name("name", &req.name, &['_', '-', '.'])
            .map_err(|m| InvalidRequest::new("name", m))?;
        let timezone = req.timezone.unwrap_or_else(|| "UTC".into());
        let timing = Timing::parse(&req.cron, &timezone)?;
        let target = Target::from_request(req.task, req.workflow)?;
        self.check_target(owner, &target)?;
        let now = self.now();
        let s = StoredSchedule {
            owner: owner.to_string(),
            name: req.name.clone(),
            cron: req.cron,
            timezone,
            task: target.to_stored(),
            overlap: req.overlap.unwrap_or_default().as_str().into(),
            catch_up: req.catch_up.unwrap_or_default().as_str().into(),
            paused: req.paused.unwrap_or(false),
            next_at: timing.next_after(now).unwrap_or_else(never),
            last_at: None,
            last_task_id: None,
            created_at: now,
            updated_at: now,
        };
        if !self.inner().store.insert_schedule(&s).await? {
            return Err(EngineError::Conflict(format!(
                "a schedule named `{}` exists; change it with PATCH or delete it first",
                req.name
            )));
        }
        self.inner().schedules_changed.notify_one();
        Ok(view(&s))
    }

    async fn stored_schedule(
        &self,
        owner: &str,
        name: &str,
    ) -> Result<StoredSchedule, EngineError> {
        self.inner()
            .store
            .get_schedule(owner, name)
            .await?
            .ok_or_else(|| EngineError::ScheduleNotFound(name.to_string()))
    }

    pub async fn schedule(&self, owner: &str, name: &str) -> Result<ScheduleView, EngineError> {
        Ok(view(&self.stored_schedule(owner, name).await?))
    }

    pub async fn schedules(&self, owner: &str) -> Result<ScheduleList, EngineError> {
        let all = self.inner().store.list_schedules(Some(owner)).await?;
        Ok(ScheduleList {
            schedules: all.iter().map(view).collect(),
        })
    }

    /// Changes a schedule; a new cron, zone or a resume starts counting ticks from now.
    pub async fn update_schedule(
        &self,
        owner: &str,
        name: &str,
        upd: ScheduleUpdate,
    ) -> Result<ScheduleView, EngineError> {
        let mut s = self.stored_schedule(owner, name).await?;
        let retime =
            upd.cron.is_some() || upd.timezone.is_some() || (s.paused && upd.paused == Some(false));
        if let Some(c) = upd.cron {
            s.cron = c;
        }
        if let Some(tz) = upd.timezone {
            s.timezone = tz;
        }
        let timing = Timing::of(&s)?;
        if upd.task.is_some() || upd.workflow.is_some() {
            let target = Target::from_request(upd.task, upd.workflow)?;
            self.check_target(owner, &target)?;
            s.task = target.to_stored();
        }
        if let Some(o) = upd.overlap {
            s.overlap = o.as_str().into();
        }
        if let Some(c) = upd.catch_up {
            s.catch_up = c.as_str().into();
        }
        if let Some(p) = upd.paused {
            s.paused = p;
        }
        let now = self.now();
        if retime {
            s.next_at = timing.next_after(now).unwrap_or_else(never);
        }
        s.updated_at = now;
        if !self.inner().store.update_schedule(&s).await? {
            return Err(EngineError::ScheduleNotFound(name.to_string()));
        }
        self.inner().schedules_changed.notify_one();
        Ok(view(&s))
    }

    pub async fn delete_schedule(&self, owner: &str, name: &str) -> Result<(), EngineError> {
        if self.inner().store.delete_schedule(owner, name).await? {
            Ok(())
        } else {
            Err(EngineError::ScheduleNotFound(name.to_string()))
        }
    }

    pub async fn schedule_runs(
        &self,
        owner: &str,
        name: &str,
        limit: Option<u32>,
    ) -> Result<ScheduleRuns, EngineError> {
        let limit = crate::page::Page::parse(limit, None)?.limit;
        let s = self.stored_schedule(owner, name).await?;
        let is_workflow = Target::stored(&s.task).is_ok_and(|t| t.is_workflow());
        let runs = self.inner().store.schedule_runs(owner, name, limit).await?;
        Ok(ScheduleRuns {
            name: name.to_string(),
            runs: runs
                .into_iter()
                .map(|r| {
                    let (task_id, workflow_id) = run_ids(is_workflow, r.task_id);
                    ScheduleRunView {
                        tick_at: r.tick_at,
                        task_id,
                        workflow_id,
                    }
                })
                .collect(),
        })
    }

    /// Fires what is due now; returns how many ticks made a task.
    pub async fn fire_due_schedules(&self) -> Result<usize, EngineError> {
        let inner = self.inner();
        let now = self.now();
        let mut fired = 0;
        for s in inner.store.due_schedules(now, 100).await? {
            match self.fire(&s, now).await {
                Ok(true) => fired += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(schedule = %s.name, owner = %s.owner, error = %e, "a schedule could not fire")
                }
            }
        }
        Ok(fired)
    }

    /// Fires (or skips) a due schedule's tick, and moves it on.
    async fn fire(&self, s: &StoredSchedule, now: Timestamp) -> Result<bool, EngineError> {
        let store = &self.inner().store;
        // Moves the schedule on to `to` without a run.
        let skip = async |to: Timestamp| -> Result<bool, EngineError> {
            store
                .advance_schedule(&s.owner, &s.name, s.next_at, to, None, now)
                .await?;
            Ok(false)
        };
        let Ok(timing) = Timing::of(s) else {
            // Stored before a rule changed: park it rather than retry forever.
            return skip(never()).await;
        };
        let next = timing.next_after(now).unwrap_or_else(never);
        let late = now.millis_since(s.next_at) > LATE.as_millis() as u64;
        let tick = match (late, s.catch_up.as_str()) {
            (false, _) => Some(s.next_at),
            (true, "latest") => timing.latest_at(now).filter(|t| *t >= s.next_at),
            (true, _) => None,
        };
        let Some(tick) = tick else {
            tracing::info!(schedule = %s.name, owner = %s.owner, missed_since = %s.next_at, "skipping ticks missed while no node ran");
            return skip(next).await;
        };
        let target = Target::stored(&s.task)?;
        if s.overlap == "skip"
            && let Some(last) = s.last_task_id
            && self.run_is_open(&target, last).await?
        {
            tracing::debug!(schedule = %s.name, owner = %s.owner, "skipping a tick: the last run is still open");
            return skip(next).await;
        }
        let made = match target {
            Target::Task(mut req) => {
                req.idempotency_key = Some(format!("schedule:{}:{}", s.name, tick.as_millis()));
                self.submit(&s.owner, *req).await.map(|sub| sub.task.id)
            }
            Target::Workflow(def) => {
                let id = TaskId::derived(tick, &format!("schedule\0{}\0{}", s.owner, s.name));
                let wf = format!("wf-{id}");
                match store.get_workflow(&wf).await? {
                    // Fired before (by a process that stopped before moving the
                    // schedule on, or by another node just now).
                    Some(_) => Ok(id),
                    None => match self.submit_workflow_as(&s.owner, *def, id, None).await {
                        Ok(_) => Ok(id),
                        // Another process stored this tick's workflow at the same
                        // moment (the store's key refused ours): the tick has fired.
                        Err(e) => match store.get_workflow(&wf).await? {
                            Some(_) => Ok(id),
                            None => Err(e),
                        },
                    },
                }
            }
        };
        let task_id: TaskId = match made {
            Ok(id) => id,
            Err(e) => {
                // A tick whose task cannot be made (its tool was removed, say) is skipped,
                // not retried every second.
                tracing::warn!(schedule = %s.name, owner = %s.owner, error = %e, "a schedule's task was refused; skipping the tick");
                return skip(next).await;
            }
        };
        let run = ScheduleRun {
            tick_at: tick,
            task_id,
        };
        store
            .advance_schedule(&s.owner, &s.name, s.next_at, next, Some(run), now)
            .await?;
        Ok(true)
    }
}

impl Engine {
    /// Whether a schedule's last run (a task, or the workflow `wf-<id>`) is still open.
    async fn run_is_open(&self, target: &Target, id: TaskId) -> Result<bool, EngineError> {
        let store = &self.inner().store;
        Ok(match target {
            Target::Task(_) => store
                .get_task(id)
                .await?
                .is_some_and(|t| !t.status.is_final()),
            Target::Workflow(_) => store
                .get_workflow(&format!("wf-{id}"))
                .await?
                .is_some_and(|w| w.status == baton_store::WorkflowStatus::Running),
        })
    }
}

/// Fires schedules as they come due, on every process with an API.
pub(crate) async fn scheduler_loop(inner: Arc<Inner>) {
    let engine = Engine::from_inner(inner.clone());
    loop {
        if let Err(e) = engine.fire_due_schedules().await {
            tracing::warn!(error = %e, "schedules could not be read");
        }
        let wait = match inner.store.next_schedule_at().await {
            Ok(Some(at)) => {
                let ms = at.as_millis().saturating_sub(inner.clock.now().as_millis());
                Duration::from_millis(ms.max(0) as u64).min(POLL)
            }
            _ => POLL,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.schedules_changed.notified() => {}
            _ = inner.stop_background.cancelled() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crons_and_zones_are_checked_and_read_in_their_zone() {
        assert_eq!(
            Timing::parse("61 * * * *", "UTC").err().unwrap().field,
            "cron"
        );
        assert_eq!(
            Timing::parse("* * * * *", "Mars/Olympus")
                .err()
                .unwrap()
                .field,
            "timezone"
        );
        // 09:00 in Paris on 2026-01-05 (winter, UTC+1) is 08:00 UTC.
        let t = Timing::parse("0 9 * * *", "Europe/Paris").unwrap();
        let from = Timestamp::parse_rfc3339("2026-01-05T07:00:00Z").unwrap();
        assert_eq!(
            t.next_after(from).unwrap(),
            Timestamp::parse_rfc3339("2026-01-05T08:00:00Z").unwrap()
        );
        // Seconds are optional: six fields tick every ten seconds.
        let t = Timing::parse("*/10 * * * * *", "UTC").unwrap();
        let from = Timestamp::parse_rfc3339("2026-01-05T07:00:03Z").unwrap();
        assert_eq!(
            t.upcoming(from, 2),
            [
                Timestamp::parse_rfc3339("2026-01-05T07:00:10Z").unwrap(),
                Timestamp::parse_rfc3339("2026-01-05T07:00:20Z").unwrap()
            ]
        );
        assert_eq!(
            t.latest_at(Timestamp::parse_rfc3339("2026-01-05T07:00:25Z").unwrap()),
            Some(Timestamp::parse_rfc3339("2026-01-05T07:00:20Z").unwrap())
        );
    }
}
