//! Baton workflows as definitions: everything about a workflow that needs neither the
//! store nor the engine. No I/O, no async.
//!
//! A workflow is a DAG of steps; each step is one tool call that the engine runs as a
//! durable Baton task, after the steps it `depends_on`, with arguments that may reference
//! earlier steps' results.
//!
//! Layout, in the order a definition goes through it:
//! - [`definition`]: [`Definition`] and [`Step`] read from YAML or JSON text
//!   ([`Definition::parse`]) or a JSON value ([`Definition::from_value`]); errors name
//!   the path (`steps[1].argumnts`) and, from text, the line.
//! - [`validate`](mod@validate): [`validate()`] checks a definition against a
//!   [`ToolCatalog`] (the engine's registry) and reports every [`Problem`] at once, or
//!   returns a [`Plan`].
//! - [`reference`](mod@reference): `${steps.<id>.result…}` in arguments: parsing
//!   ([`references`]) and substitution of stored results ([`resolve`]).
//! - [`plan`]: [`Plan`], the validated graph (topological order, ancestors, dependants)
//!   and the run rules: [`StepState`], which steps are [`Plan::ready`], what a failure
//!   stops ([`Plan::failure_effect`]) and the [`WorkflowStatus`].
//! - [`export`]: the DAG with its critical path as JSON, Graphviz DOT and Mermaid.
//!
//! ```
//! use baton_workflow::{Definition, StepState, ToolCatalog, validate};
//!
//! struct AnyTool;
//! impl ToolCatalog for AnyTool {
//!     fn exists(&self, _: &str) -> bool { true }
//!     fn suggest(&self, _: &str) -> Option<String> { None }
//!     fn check_arguments(&self, _: &str, _: &serde_json::Value) -> Result<(), String> { Ok(()) }
//! }
//!
//! let definition = Definition::parse("
//! name: demo
//! steps:
//!   - { id: a, tool: s__one }
//!   - { id: b, tool: s__two, depends_on: [a], arguments: { x: '${steps.a.result.n}' } }
//! ").unwrap();
//! let plan = validate(&definition, &AnyTool).unwrap();
//! let mut states = plan.initial_states();
//! assert_eq!(plan.ready(&states), [0]);
//! states[0] = StepState::Completed;
//! assert_eq!(plan.ready(&states), [1]);
//! ```

#![warn(missing_docs)]

pub mod definition;
pub mod export;
pub mod plan;
pub mod reference;
pub mod validate;

pub use definition::{Definition, DefinitionError, Format, OnFailure, Retry, Step};
pub use export::{Dag, StepRun};
pub use plan::{Advance, FailureEffect, Plan, StepState, WorkflowStatus};
pub use reference::{
    Reference, ReferenceError, ResolveError, ResolveLimits, Segment, Source, references, resolve,
    resolve_with,
};
pub use validate::{Problem, ToolCatalog, closest, validate};
