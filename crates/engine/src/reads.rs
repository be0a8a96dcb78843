//! Reads as the front doors show them: a task described in full, a page of tasks, the
//! peers, the queues. REST and MCP call these and render the same views.

use baton_core::{TaskId, TaskStatus};
use baton_store::TaskQuery;
use schemars::JsonSchema;
use serde::Serialize;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::page::Page;
use crate::views::{PeerView, QueueView, QueuesView, TaskView};

/// Which tasks a list returns (all of the caller's when empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub tool: Option<String>,
    pub queue: Option<String>,
    /// The steps of one workflow.
    pub workflow_id: Option<String>,
    /// The children of one task.
    pub parent_id: Option<TaskId>,
}

/// A page of tasks, newest first, without their results.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TaskPage {
    pub tasks: Vec<TaskView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

impl Engine {
    /// The caller's task in full: with its result, estimated completion, why it waits (if
    /// it does) and its children.
    pub async fn describe(&self, owner: &str, id: TaskId) -> Result<TaskView, EngineError> {
        let task = match self.get(owner, id).await {
            Err(EngineError::TaskNotFound(missing)) => {
                // Deleted by retention: perhaps archived first.
                let Some(task) = self.archived_task(owner, id).await? else {
                    return Err(EngineError::TaskNotFound(missing));
                };
                let mut view = TaskView::new(task, None, true);
                view.archived = true;
                return Ok(view);
            }
            found => found?,
        };
        let mut task = task;
        self.resolve_payload(&mut task).await?;
        let estimate = self.estimate_completion(&task).await;
        let waiting = if let Some(leader) =
            task.follows.filter(|_| task.status == TaskStatus::Pending)
        {
            Some(format!(
                "waits for task {leader}, an identical call in flight (result cache), and takes its result"
            ))
        } else if task.status == TaskStatus::Pending {
            match self.tools().waiting_reason(&task.tool) {
                Some(why) => Some(why),
                None => match self.rate_limited(&task).await? {
                    Some(why) => Some(why),
                    None => self.group_full(&task).await?,
                },
            }
        } else {
            None
        };
        let children = self.children(id).await?;
        let mut view = TaskView::new(task, estimate, true);
        view.waiting_reason = waiting;
        view.children = Some(children.iter().map(ToString::to_string).collect());
        Ok(view)
    }

    /// Why a due pending task waits on a rate limit, if one that covers its tool has no
    /// token left now.
    async fn rate_limited(&self, task: &baton_core::Task) -> Result<Option<String>, EngineError> {
        let now = self.inner().clock.now();
        let (_, rates) = crate::worker::claim_limits(self.inner());
        let rates: Vec<_> = rates
            .into_iter()
            .filter(|r| r.selector.matches(&task.tool))
            .collect();
        if rates.is_empty() || task.run_at > now {
            return Ok(None);
        }
        let buckets = self.inner().store.rate_buckets().await?;
        Ok(rates.iter().find_map(|r| {
            let b = r.refill(buckets.iter().find(|b| b.key == r.key()), now);
            (b.whole_tokens() == 0).then(|| {
                let scope = match &r.selector {
                    baton_store::ToolSelector::Tool(t) => format!("tool `{t}`"),
                    baton_store::ToolSelector::Prefix(p) => {
                        format!(
                            "server `{}`",
                            p.trim_end_matches(self.inner().config.separator.as_str())
                        )
                    }
                };
                format!(
                    "rate limit of {scope} ({}) reached; the next start is allowed in {} ms",
                    r.rate,
                    r.next_token_in(&b).as_millis()
                )
            })
        }))
    }

    /// Why a due pending task waits on `max_running_per_group`, if its group has that
    /// many running now.
    async fn group_full(&self, task: &baton_core::Task) -> Result<Option<String>, EngineError> {
        let Some(max) = self.inner().config.group_max else {
            return Ok(None);
        };
        if task.run_at > self.inner().clock.now() {
            return Ok(None);
        }
        let running = self
            .inner()
            .store
            .list_tasks(&TaskQuery {
                owner: Some(task.owner.clone()),
                status: Some(TaskStatus::Running),
                group_key: Some(task.group_key.clone().unwrap_or_default()),
                limit: max,
                ..Default::default()
            })
            .await?;
        let in_group = running.len();
        Ok((in_group as u64 >= u64::from(max)).then(|| {
            let group = match &task.group_key {
                Some(k) => format!("group `{k}` of `{}`", task.owner),
                None => format!("`{}`", task.owner),
            };
            format!("{group} has {in_group} tasks running, the most max_running_per_group allows")
        }))
    }

    /// A page of the caller's tasks, newest first.
    pub async fn task_page(
        &self,
        owner: &str,
        filter: TaskFilter,
        page: Page,
    ) -> Result<TaskPage, EngineError> {
        let tasks = self
            .list(
                owner,
                TaskQuery {
                    owner: None,
                    status: filter.status,
                    tool: filter.tool,
                    queue: filter.queue,
                    workflow_id: filter.workflow_id,
                    parent_id: filter.parent_id,
                    group_key: None,
                    before_seq: page.before_seq,
                    limit: page.limit,
                },
            )
            .await?;
        let next_cursor = page.next(&tasks, |t| t.seq);
        Ok(TaskPage {
            tasks: tasks
                .into_iter()
                .map(|t| TaskView::new(t, None, false))
                .collect(),
            next_cursor,
        })
    }

    /// The processes sharing this store, each with its health (see [`PeerView`]).
    pub async fn peer_views(&self) -> Result<Vec<PeerView>, EngineError> {
        let me = &self.config().node_id;
        Ok(self
            .peers()
            .await?
            .into_iter()
            .map(|(p, health)| PeerView {
                is_self: &p.id == me,
                id: p.id,
                role: p.role,
                address: p.address,
                version: p.version,
                state: p.state.as_str().to_string(),
                health: health.to_string(),
                started_at: p.started_at,
                last_heartbeat: p.last_heartbeat,
                running: p.running,
                finished: p.finished,
                throughput: p.throughput,
                draining: p.draining,
            })
            .collect())
    }

    /// Asks a live peer to stop claiming tasks; it finishes what it runs, and notices
    /// within a heartbeat.
    pub async fn drain_peer(&self, id: &str) -> Result<PeerView, EngineError> {
        if !self.inner().store.drain_peer(id).await? {
            return Err(EngineError::PeerNotFound(id.to_string()));
        }
        self.peer_views()
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| EngineError::PeerNotFound(id.to_string()))
    }

    /// Every queue of `owner` (of all principals when `None`) with its depth and
    /// throughput, and this node's counters.
    pub async fn queues_view(&self, owner: Option<&str>) -> Result<QueuesView, EngineError> {
        let queues: Vec<QueueView> = self
            .queues(owner)
            .await?
            .into_iter()
            .map(QueueView::from)
            .collect();
        // A principal sees their own active tasks; across principals, the node's count.
        let active_tasks = match owner {
            Some(_) => queues
                .iter()
                .flat_map(|q| {
                    ["pending", "running", "input_required"]
                        .map(|s| q.counts.get(s).copied().unwrap_or(0))
                })
                .sum(),
            None => self.active_tasks(),
        };
        Ok(QueuesView {
            queues,
            active_tasks,
            running_here: self.running_here() as u64,
        })
    }
}
