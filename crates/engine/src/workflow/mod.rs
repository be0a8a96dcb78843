//! Workflows: a validated DAG of steps ([`baton_workflow`]) run as durable tasks.
//!
//! The store keeps everything: the workflow row (definition, status, the state of steps
//! that ended without a task) and one task per started step, which names its workflow
//! and step. Nothing lives only in memory, so a restart resumes where the store says the
//! workflow is, and a completed step never runs again: its task is there, completed.
//!
//! **Submission** validates the whole definition (every problem at once), then stores the
//! workflow and the tasks of its root steps in one transaction.
//!
//! **The coordinator** ([`coordinator_loop`]) moves running workflows on. One process of a
//! deployment holds the `workflows` singleton role and coordinates; it hears every task
//! event (its own and, through the store's feed, other processes'), and when a step's
//! task finishes it *advances* the workflow: it reads the workflow and its tasks back,
//! derives every step's state, applies the failure policy (skip what depends on a
//! failure; under `fail_fast` cancel the running steps and skip the rest), resolves the
//! references of the steps that became ready from the stored results, and stores their
//! tasks — in one transaction that only applies while the workflow is still running, so a
//! cancel can never be overtaken by a step starting. Step tasks carry an idempotency key
//! made of the workflow and step ids: advancing twice stores one task. A periodic sweep of
//! running workflows covers anything an event did not say (a gap in the feed, a role
//! that just moved here).
//!
//! Layout: [`views`] (what the API shows: workflows, steps, progress, DAGs, timelines),
//! [`api`] (the engine's workflow methods: submit, read, cancel, retry), `plans` (the
//! checked plan of a stored definition, cached), `state` (what this process remembers to
//! look at), and `coordinator` (advancing workflows, the `workflows` role). The decision
//! of an advance is [`baton_workflow::Plan::advance`], a pure function.

mod api;
mod coordinator;
mod plans;
pub(crate) mod state;
pub mod views;

pub use api::{SubmittedWorkflow, WorkflowOptions, definition_from_value, parse_definition};
pub(crate) use coordinator::coordinator_loop;
pub use views::{
    DagFormat, DagOutput, StepView, TimelineEntry, WorkflowPage, WorkflowProgress, WorkflowResult,
    WorkflowView,
};

/// Most steps of one workflow (and so tasks read back per advance).
const MAX_STEPS: u32 = 1000;
