//! The checked plan of a workflow: built from the definition against the tool catalog at
//! submit, and from the stored definition (cached) afterwards.

use std::sync::Arc;

use baton_store::Workflow;
use baton_workflow::{Definition, Plan, ToolCatalog};
use serde_json::Value;

use crate::EngineError;
use crate::engine::Engine;
use crate::tools::ToolRegistry;

/// The engine's tool registry as the catalog a definition is checked against.
pub(super) struct Registry<'a>(pub(super) &'a ToolRegistry);

impl ToolCatalog for Registry<'_> {
    fn exists(&self, tool: &str) -> bool {
        self.0.resolve(tool).is_some() || self.0.starting_server(tool).is_some()
    }

    /// The catalog's name closest to `tool`, if one is a likely typo of it.
    fn suggest(&self, tool: &str) -> Option<String> {
        let names: Vec<String> = self
            .0
            .catalog()
            .into_iter()
            .map(|e| e.qualified_name)
            .collect();
        baton_workflow::closest(tool, names.iter().map(String::as_str)).map(str::to_string)
    }

    fn check_arguments(&self, tool: &str, arguments: &Value) -> Result<(), String> {
        match self.0.resolve(tool) {
            Some(resolved) => self.0.validate(tool, &resolved.info, arguments),
            None => Ok(()),
        }
    }
}

/// For definitions that were validated when stored: the graph is checked again, the
/// tools are not (a server may be away for a while; its steps then fail when they start).
struct Stored;

impl ToolCatalog for Stored {
    fn exists(&self, _: &str) -> bool {
        true
    }
    fn suggest(&self, _: &str) -> Option<String> {
        None
    }
    fn check_arguments(&self, _: &str, _: &Value) -> Result<(), String> {
        Ok(())
    }
}

/// Most plans kept (see [`Coordination::plans`]).
const PLAN_CACHE: usize = 1024;

/// The plan of a stored workflow, from the cache or built once.
pub(super) fn plan_of(engine: &Engine, wf: &Workflow) -> Result<Arc<Plan>, EngineError> {
    let plans = &engine.inner().workflows.plans;
    if let Some(p) = plans.lock().unwrap_or_else(|e| e.into_inner()).get(&wf.id) {
        return Ok(p.clone());
    }
    let plan = Arc::new(stored_plan(wf)?);
    engine
        .inner()
        .workflows
        .plans_built
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut cache = plans.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= PLAN_CACHE {
        cache.clear();
    }
    cache.insert(wf.id.clone(), plan.clone());
    Ok(plan)
}

pub(super) fn stored_plan(wf: &Workflow) -> Result<Plan, EngineError> {
    let definition = Definition::from_value(wf.definition.clone()).map_err(|e| {
        EngineError::Store(baton_store::StoreError::Decode(format!(
            "workflow {}: {e}",
            wf.id
        )))
    })?;
    baton_workflow::validate(&definition, &Stored).map_err(|problems| {
        EngineError::Store(baton_store::StoreError::Decode(format!(
            "workflow {}: {}",
            wf.id,
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )))
    })
}

/// The idempotency key of a step's task: advancing a workflow twice stores one task.
pub(super) fn step_key(workflow: &str, step: &str) -> String {
    format!("workflow/{workflow}/{step}")
}
