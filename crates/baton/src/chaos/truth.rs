//! The final truth, read once every Baton process has stopped: every task with its
//! complete event log and every workflow, straight from the store, and the side effects
//! the test server recorded in its state directory.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use baton_store::{Store, TaskQuery, WorkflowQuery};
use serde_json::Value;

use super::check::{EventTruth, TaskTruth, Truth, WorkflowTruth};

const PAGE: u32 = 1000;

pub async fn read(store: &dyn Store, state_dir: &Path) -> anyhow::Result<Truth> {
    let mut truth = Truth::default();
    let mut before = None;
    loop {
        let page = store
            .list_tasks(&TaskQuery {
                before_seq: before,
                limit: PAGE,
                ..Default::default()
            })
            .await
            .context("listing the tasks")?;
        let full = page.len() == PAGE as usize;
        for task in page {
            before = Some(task.seq);
            let mut events = Vec::new();
            let mut after = 0;
            loop {
                let got = store
                    .task_events(task.id, after, 10_000)
                    .await
                    .with_context(|| format!("reading the events of {}", task.id))?;
                let n = got.len();
                for e in got {
                    after = e.seq;
                    events.push(EventTruth {
                        seq: e.seq,
                        kind: e.kind.as_str().to_string(),
                    });
                }
                if n < 10_000 {
                    break;
                }
            }
            let id = task.id.to_string();
            truth.tasks.insert(
                id.clone(),
                TaskTruth {
                    id,
                    tool: task.tool,
                    status: task.status.as_str().to_string(),
                    leased: task.lease.is_some(),
                    step: task.step.map(|s| (s.workflow_id, s.step_id)),
                    events,
                },
            );
        }
        if !full {
            break;
        }
    }
    let mut before = None;
    loop {
        let page = store
            .list_workflows(&WorkflowQuery {
                before_seq: before,
                limit: PAGE,
                ..Default::default()
            })
            .await
            .context("listing the workflows")?;
        let full = page.len() == PAGE as usize;
        for wf in page {
            before = Some(wf.seq);
            let deps = wf.definition["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let id = s["id"].as_str()?.to_string();
                    let deps = s["depends_on"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect();
                    Some((id, deps))
                })
                .collect();
            truth.workflows.insert(
                wf.id.clone(),
                WorkflowTruth {
                    id: wf.id,
                    status: wf.status.as_str().to_string(),
                    deps,
                },
            );
        }
        if !full {
            break;
        }
    }
    truth.effects = read_effects(state_dir)?;
    Ok(truth)
}

/// Lines of each `effect-<key>` file: one per call the test server received.
pub fn read_effects(state_dir: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut effects = BTreeMap::new();
    let entries = match std::fs::read_dir(state_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(effects),
        Err(e) => return Err(e).context("reading the test server's state directory"),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(key) = name.strip_prefix("effect-") {
            let text = std::fs::read_to_string(entry.path())?;
            effects.insert(key.to_string(), text.lines().count() as u64);
        }
    }
    Ok(effects)
}
