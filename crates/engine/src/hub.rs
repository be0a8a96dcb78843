//! Live event fan-out: after the store commits a change, its events are published here
//! for SSE streams, long-polls and (later) MCP notifications.
//!
//! Subscribers of one task get a channel of their own, so publishing costs one map
//! lookup per event rather than one send per subscriber of every task. A subscriber that
//! falls behind sees `Lagged` and re-reads the event log from its last sequence number:
//! the log, not this hub, is the source of truth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use baton_core::{TaskEvent, TaskId};
use tokio::sync::broadcast;

const PER_TASK_CAPACITY: usize = 256;
const ALL_CAPACITY: usize = 8192;

pub struct EventHub {
    tasks: Mutex<HashMap<TaskId, broadcast::Sender<Arc<TaskEvent>>>>,
    all: broadcast::Sender<Arc<TaskEvent>>,
    logs: broadcast::Sender<Arc<TaskLog>>,
    /// Workflow steps' tasks (→ their workflow) whose end the workflow coordinator waits
    /// for; learnt from `created` events that name a workflow, and from the coordinator.
    steps: Mutex<HashMap<TaskId, String>>,
    /// Where the ids of workflows to advance go (set once by the coordinator).
    workflow_feed: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<String>>,
}

/// A log message a running tool emitted (e.g. an upstream server's
/// `notifications/message`), as relayed live to clients following the task on this node
/// (the line is stored with the task too, see `TaskHandle::log`).
#[derive(Debug, Clone)]
pub struct TaskLog {
    pub task_id: TaskId,
    /// An MCP logging level: debug, info, notice, warning, error, critical, alert, emergency.
    pub level: String,
    pub logger: Option<String>,
    pub data: serde_json::Value,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            tasks: Mutex::new(HashMap::new()),
            all: broadcast::channel(ALL_CAPACITY).0,
            logs: broadcast::channel(1024).0,
            steps: Mutex::new(HashMap::new()),
            workflow_feed: std::sync::OnceLock::new(),
        }
    }
}

impl EventHub {
    pub fn publish(&self, events: &[TaskEvent]) {
        if events.is_empty() {
            return;
        }
        self.feed_workflows(events);
        let listening_all = self.all.receiver_count() > 0;
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.is_empty() && !listening_all {
            return;
        }
        for ev in events {
            let sender = tasks.get(&ev.task_id);
            if sender.is_none() && !listening_all {
                continue;
            }
            let ev = Arc::new(ev.clone());
            if let Some(tx) = sender {
                let _ = tx.send(ev.clone());
            }
            if listening_all {
                let _ = self.all.send(ev);
            }
        }
    }

    /// Tells the workflow coordinator which workflows a batch of events concerns: a step
    /// task that ended or was retried. Costs one lock per batch (when a batch has a final
    /// event or an event with data), no copy of the events.
    fn feed_workflows(&self, events: &[TaskEvent]) {
        use baton_core::EventKind;
        let Some(feed) = self.workflow_feed.get() else {
            return;
        };
        let relevant = |e: &TaskEvent| e.status.is_final() || e.data.is_some();
        if !events.iter().any(relevant) {
            return;
        }
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        for e in events.iter().filter(|e| relevant(e)) {
            // `created` and `retried` events of a step task name its workflow: a step
            // created, or a failed workflow being retried (possibly through another
            // process), so the workflow needs looking at.
            let named = matches!(e.kind, EventKind::Created | EventKind::Retried)
                .then(|| e.data.as_ref()?.get("workflow_id")?.as_str())
                .flatten();
            if let Some(wf) = named {
                steps.insert(e.task_id, wf.to_string());
                if e.kind == EventKind::Retried {
                    let _ = feed.send(wf.to_string());
                }
            } else if e.status.is_final()
                && let Some(wf) = steps.get(&e.task_id)
            {
                let _ = feed.send(wf.clone());
            }
        }
    }

    /// The workflow coordinator's feed: ids of workflows whose step tasks ended.
    pub(crate) fn workflow_feed(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<String>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.workflow_feed.set(tx).ok().map(|()| rx)
    }

    /// Watches the step tasks of running workflows, and only those (`steps`: task →
    /// workflow, as read from the store).
    pub(crate) fn watch_steps(&self, steps: HashMap<TaskId, String>) {
        *self.steps.lock().unwrap_or_else(|e| e.into_inner()) = steps;
    }

    /// Events of one task from now on. Subscribe before reading the task's state, so that
    /// nothing committed in between is missed.
    pub fn subscribe(self: &Arc<Self>, id: TaskId) -> TaskSubscription {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let rx = tasks
            .entry(id)
            .or_insert_with(|| broadcast::channel(PER_TASK_CAPACITY).0)
            .subscribe();
        TaskSubscription {
            hub: self.clone(),
            id,
            rx: Some(rx),
        }
    }

    /// Every event of every task.
    pub fn subscribe_all(&self) -> broadcast::Receiver<Arc<TaskEvent>> {
        self.all.subscribe()
    }

    pub fn publish_log(&self, log: TaskLog) {
        if self.logs.receiver_count() > 0 {
            let _ = self.logs.send(Arc::new(log));
        }
    }

    /// Log messages of running tools on this node, from now on.
    pub fn subscribe_logs(&self) -> broadcast::Receiver<Arc<TaskLog>> {
        self.logs.subscribe()
    }

    #[cfg(test)]
    fn watched_tasks(&self) -> usize {
        self.tasks.lock().unwrap().len()
    }
}

/// A live subscription to one task; unregisters itself when dropped.
pub struct TaskSubscription {
    hub: Arc<EventHub>,
    id: TaskId,
    rx: Option<broadcast::Receiver<Arc<TaskEvent>>>,
}

impl TaskSubscription {
    pub async fn recv(&mut self) -> Result<Arc<TaskEvent>, broadcast::error::RecvError> {
        match self.rx.as_mut() {
            Some(rx) => rx.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }
}

impl Drop for TaskSubscription {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut tasks = self.hub.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if tasks
            .get(&self.id)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            tasks.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::{EventKind, TaskStatus, Timestamp};

    fn event(id: TaskId, seq: i64) -> TaskEvent {
        TaskEvent {
            seq,
            task_id: id,
            at: Timestamp::ZERO,
            kind: EventKind::Progress,
            status: TaskStatus::Running,
            attempt: None,
            progress: None,
            message: None,
            data: None,
            result: None,
        }
    }

    #[tokio::test]
    async fn subscribers_get_their_task_only_and_clean_up() {
        let hub = Arc::new(EventHub::default());
        let a = TaskId::generate(Timestamp::now());
        let b = TaskId::generate(Timestamp::now());
        let mut sub_a = hub.subscribe(a);
        let mut all = hub.subscribe_all();
        hub.publish(&[event(b, 1), event(a, 2)]);
        assert_eq!(sub_a.recv().await.unwrap().seq, 2);
        assert_eq!(all.recv().await.unwrap().seq, 1);
        assert_eq!(all.recv().await.unwrap().seq, 2);
        let sub_a2 = hub.subscribe(a);
        drop(sub_a);
        assert_eq!(hub.watched_tasks(), 1);
        drop(sub_a2);
        assert_eq!(hub.watched_tasks(), 0);
    }

    #[tokio::test]
    async fn the_workflow_feed_names_workflows_whose_steps_ended() {
        let hub = EventHub::default();
        let mut feed = hub.workflow_feed().expect("the first feed");
        assert!(hub.workflow_feed().is_none(), "one coordinator per process");
        let step = TaskId::generate(Timestamp::now());
        let plain = TaskId::generate(Timestamp::now());
        let with = |id, kind, status, data: Option<serde_json::Value>| TaskEvent {
            kind,
            status,
            data,
            ..event(id, 1)
        };
        let created = with(
            step,
            EventKind::Created,
            TaskStatus::Pending,
            Some(serde_json::json!({"workflow_id": "wf-1", "step_id": "a"})),
        );
        hub.publish(&[
            created,
            with(plain, EventKind::Created, TaskStatus::Pending, None),
        ]);
        hub.publish(&[
            with(step, EventKind::Started, TaskStatus::Running, None),
            with(plain, EventKind::Completed, TaskStatus::Completed, None),
        ]);
        assert!(
            feed.try_recv().is_err(),
            "nothing ended that belongs to a workflow"
        );
        hub.publish(&[with(
            step,
            EventKind::Completed,
            TaskStatus::Completed,
            None,
        )]);
        assert_eq!(feed.try_recv().unwrap(), "wf-1");
        // The coordinator's sweep replaces what is watched.
        hub.watch_steps(HashMap::new());
        hub.publish(&[with(step, EventKind::Retried, TaskStatus::Pending, None)]);
        assert!(feed.try_recv().is_err());
        hub.watch_steps(HashMap::from([(step, "wf-2".to_string())]));
        hub.publish(&[with(step, EventKind::Failed, TaskStatus::Failed, None)]);
        assert_eq!(feed.try_recv().unwrap(), "wf-2");
        // A step task retried (its workflow retried, maybe through another process)
        // names its workflow: it is watched again and the workflow looked at.
        hub.watch_steps(HashMap::new());
        let retried = with(
            step,
            EventKind::Retried,
            TaskStatus::Pending,
            Some(serde_json::json!({"workflow_id": "wf-3", "step_id": "a"})),
        );
        hub.publish(&[retried]);
        assert_eq!(feed.try_recv().unwrap(), "wf-3");
        hub.publish(&[with(
            step,
            EventKind::Completed,
            TaskStatus::Completed,
            None,
        )]);
        assert_eq!(feed.try_recv().unwrap(), "wf-3");
    }
}
