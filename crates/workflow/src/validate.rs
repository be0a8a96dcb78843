//! Checks a [`Definition`] as a whole and turns it into a [`Plan`], or lists every
//! problem found, each naming its step.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use baton_core::submit::{MAX_ATTEMPTS, MAX_TIMEOUT};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::{Definition, Step};
use crate::plan::Plan;
use crate::reference::{Reference, references};

/// Longest workflow name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Most steps in one workflow.
pub const MAX_STEPS: usize = 1000;
/// Longest step id.
pub const MAX_ID_LEN: usize = 64;
/// Most references in one step's arguments: each is replaced by a whole stored result, so
/// a step repeating one reference many times would expand without bound.
pub const MAX_REFERENCES_PER_STEP: usize = 1000;

/// The tools a workflow may call; the engine implements it over its tool registry.
pub trait ToolCatalog {
    /// Whether a tool with this qualified name exists.
    fn exists(&self, tool: &str) -> bool;
    /// A close existing name, for "did you mean".
    fn suggest(&self, tool: &str) -> Option<String>;
    /// Checks literal arguments against the tool's input schema; Err(message naming the path).
    fn check_arguments(&self, tool: &str, arguments: &Value) -> Result<(), String>;
}

/// One thing wrong with a definition. Serialises as `{"step": "charts" | null,
/// "message": "…"}`.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, schemars::JsonSchema,
)]
pub struct Problem {
    /// The step concerned, if the problem belongs to one.
    pub step: Option<String>,
    /// What is wrong, in plain words.
    pub message: String,
}

impl Problem {
    fn workflow(message: impl Into<String>) -> Problem {
        Problem {
            step: None,
            message: message.into(),
        }
    }

    fn step(step: &str, message: impl Into<String>) -> Problem {
        Problem {
            step: Some(step.to_string()),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) => write!(f, "step `{step}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Validates a definition against a tool catalog. Reports every problem at once: limits,
/// ids, unknown tools (with a suggestion), `depends_on` (unknown steps, self-dependencies,
/// cycles), reference syntax, references to steps that are not ancestors, and arguments
/// that break the tool's input schema.
///
/// The schema check runs only for steps whose arguments contain no reference: a
/// referenced value is not known before the run (and the engine checks the resolved
/// arguments when it submits the step's task).
pub fn validate(definition: &Definition, catalog: &impl ToolCatalog) -> Result<Plan, Vec<Problem>> {
    let mut problems = Vec::new();
    let steps = &definition.steps;

    let name_chars = definition.name.chars().count();
    if name_chars == 0 {
        problems.push(Problem::workflow("name must not be empty"));
    } else if name_chars > MAX_NAME_CHARS {
        problems.push(Problem::workflow(format!(
            "name is {name_chars} characters long; at most {MAX_NAME_CHARS}"
        )));
    }
    if let Err(m) = baton_core::value::check_text(&definition.name) {
        problems.push(Problem::workflow(format!("name {m}")));
    }
    if let Some(metadata) = &definition.metadata
        && let Err(m) = baton_core::value::check_json(&Value::Object(metadata.clone()))
    {
        problems.push(Problem::workflow(format!("metadata {m}")));
    }
    if steps.is_empty() {
        problems.push(Problem::workflow("a workflow needs at least one step"));
    } else if steps.len() > MAX_STEPS {
        problems.push(Problem::workflow(format!(
            "{} steps; at most {MAX_STEPS}",
            steps.len()
        )));
    }

    // Each step's problems, listed together in step order after the workflow's own.
    let mut by_step = vec![Vec::new(); steps.len()];
    // The first step with each id; later ones are reported as duplicates.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        if let Some(first) = index.get(step.id.as_str()) {
            by_step[i].push(Problem::step(
                &step.id,
                format!(
                    "id is used by more than one step (steps #{} and #{})",
                    first + 1,
                    i + 1
                ),
            ));
        } else {
            index.insert(&step.id, i);
        }
    }

    let mut dependencies = vec![Vec::new(); steps.len()];
    for (i, step) in steps.iter().enumerate() {
        let problems = &mut by_step[i];
        check_fields(i, step, catalog, problems);
        for dep in &step.depends_on {
            match index.get(dep.as_str()) {
                Some(&d) if d == i || *dep == step.id => {
                    problems.push(Problem::step(&step.id, "depends on itself"));
                }
                Some(&d) if !dependencies[i].contains(&d) => dependencies[i].push(d),
                Some(_) => {}
                None => problems.push(Problem::step(
                    &step.id,
                    format!(
                        "depends on `{dep}`, which is not a step of this workflow{}",
                        did_you_mean(closest(dep, index.keys().copied()))
                    ),
                )),
            }
        }
        dependencies[i].sort_unstable();
    }

    let mut all_references = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let problems = &mut by_step[i];
        let arguments = Value::Object(step.arguments.clone());
        let found = match references(&arguments) {
            Ok(found) => found,
            Err(errors) => {
                problems.extend(
                    errors
                        .iter()
                        .map(|e| Problem::step(&step.id, e.to_string())),
                );
                Vec::new()
            }
        };
        if found.len() > MAX_REFERENCES_PER_STEP {
            problems.push(Problem::step(
                &step.id,
                format!(
                    "arguments hold {} references; at most {MAX_REFERENCES_PER_STEP} (each is replaced by a stored result)",
                    found.len()
                ),
            ));
        }
        if let Err(m) = baton_core::value::check_json(&arguments) {
            problems.push(Problem::step(&step.id, format!("arguments {m}")));
        }
        check_references(i, step, &found, &index, &dependencies, problems);
        if found.is_empty()
            && catalog.exists(&step.tool)
            && let Err(message) = catalog.check_arguments(&step.tool, &arguments)
        {
            problems.push(Problem::step(
                &step.id,
                format!(
                    "arguments do not match the input schema of `{}`: {message}",
                    step.tool
                ),
            ));
        }
        all_references.push(found);
    }

    problems.extend(by_step.into_iter().flatten());
    problems.extend(cycles(steps, &dependencies));

    if problems.is_empty() {
        Ok(Plan::new(definition.clone(), dependencies, all_references))
    } else {
        Err(problems)
    }
}

/// The step's own fields: id, tool, limits.
fn check_fields(i: usize, step: &Step, catalog: &impl ToolCatalog, problems: &mut Vec<Problem>) {
    let id = &step.id;
    let id_chars = id.chars().count();
    if id.is_empty() {
        problems.push(Problem::workflow(format!(
            "step #{} has an empty id",
            i + 1
        )));
    } else if id_chars > MAX_ID_LEN {
        problems.push(Problem::step(
            id,
            format!("id is {id_chars} characters long; at most {MAX_ID_LEN}"),
        ));
    } else if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')))
    {
        problems.push(Problem::step(
            id,
            format!("id contains `{c}`; ids use only a-z, 0-9, `_` and `-`"),
        ));
    }

    if step.tool.is_empty() {
        problems.push(Problem::step(id, "tool must not be empty"));
    } else if !catalog.exists(&step.tool) {
        problems.push(Problem::step(
            id,
            format!(
                "unknown tool `{}`{}",
                step.tool,
                did_you_mean(catalog.suggest(&step.tool).as_deref())
            ),
        ));
    }

    if let Some(retry) = step.retry {
        if retry.max_attempts == 0 {
            problems.push(Problem::step(id, "retry.max_attempts must be at least 1"));
        } else if retry.max_attempts > MAX_ATTEMPTS {
            problems.push(Problem::step(
                id,
                format!(
                    "retry.max_attempts is {}; at most {MAX_ATTEMPTS}",
                    retry.max_attempts
                ),
            ));
        }
    }
    match step.timeout_ms {
        Some(0) => problems.push(Problem::step(id, "timeout_ms must be at least 1")),
        Some(ms) if u128::from(ms) > MAX_TIMEOUT.as_millis() => problems.push(Problem::step(
            id,
            format!(
                "timeout_ms is {ms}; at most {} (7 days)",
                MAX_TIMEOUT.as_millis()
            ),
        )),
        _ => {}
    }
    if let Some(queue) = &step.queue
        && let Err(message) = baton_core::tool::validate_name("queue", queue, &['_', '.'])
    {
        problems.push(Problem::step(id, message));
    }
}

/// Each referenced step must exist and be an ancestor of the referencing step.
fn check_references(
    i: usize,
    step: &Step,
    found: &[Reference],
    index: &HashMap<&str, usize>,
    dependencies: &[Vec<usize>],
    problems: &mut Vec<Problem>,
) {
    if found.is_empty() {
        return;
    }
    let ancestors = reachable(i, dependencies);
    let mut reported = HashSet::new();
    for reference in found {
        let Some(target) = reference.step() else {
            continue;
        };
        if !reported.insert(target) {
            continue;
        }
        let message = match index.get(target) {
            None => format!(
                "references `{reference}`, but there is no step `{target}`{}",
                did_you_mean(closest(target, index.keys().copied()))
            ),
            Some(&t) if t == i => format!("references its own result (`{reference}`)"),
            Some(&t) if ancestors[t] => continue,
            Some(_) => format!(
                "references `{target}`, which is not among its dependencies; add it to depends_on"
            ),
        };
        problems.push(Problem::step(&step.id, message));
    }
}

/// Which steps `from` reaches along `edges` (each visited once: O(steps + edges)).
fn reachable(from: usize, edges: &[Vec<usize>]) -> Vec<bool> {
    let mut seen = vec![false; edges.len()];
    let mut stack = vec![from];
    while let Some(i) = stack.pop() {
        for &d in &edges[i] {
            if !std::mem::replace(&mut seen[d], true) {
                stack.push(d);
            }
        }
    }
    seen
}

/// One problem per dependency cycle, named `a -> b -> a` where `->` reads "depends on".
/// Each step, in definition order, that is not yet on a reported cycle gets the shortest
/// cycle through it, if any; steps merely downstream of a cycle get none.
fn cycles(steps: &[Step], dependencies: &[Vec<usize>]) -> Vec<Problem> {
    let mut on_reported = vec![false; steps.len()];
    let mut problems = Vec::new();
    for start in 0..steps.len() {
        if on_reported[start] {
            continue;
        }
        // Breadth-first from `start` along depends_on, looking for the way back.
        let mut came_from: Vec<Option<usize>> = vec![None; steps.len()];
        let mut queue = VecDeque::from([start]);
        let mut closing = None;
        'search: while let Some(i) = queue.pop_front() {
            for &d in &dependencies[i] {
                if d == start {
                    closing = Some(i);
                    break 'search;
                }
                if came_from[d].is_none() {
                    came_from[d] = Some(i);
                    queue.push_back(d);
                }
            }
        }
        let Some(mut last) = closing else { continue };
        let mut cycle = vec![start];
        while last != start {
            cycle.push(last);
            last = came_from[last].expect("every visited step but the start has a parent");
        }
        cycle[1..].reverse();
        for &i in &cycle {
            on_reported[i] = true;
        }
        let names: Vec<&str> = cycle
            .iter()
            .chain([&start])
            .map(|&i| steps[i].id.as_str())
            .collect();
        problems.push(Problem::step(
            &steps[start].id,
            format!(
                "depends_on forms a cycle: {} (`->` reads \"depends on\")",
                names.join(" -> ")
            ),
        ));
    }
    problems
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!("; did you mean `{s}`?"))
}

/// The candidate closest to `name` by edit distance (a swap of two neighbours counts as
/// one edit), if it is close enough to be a likely typo: at most a third of the name's
/// length, at least 1. Ties go to the smallest candidate. Useful to implement
/// [`ToolCatalog::suggest`].
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|&(d, _)| d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Optimal string alignment distance over characters: insertions, deletions,
/// substitutions and transpositions of adjacent characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: distance between the first i characters of a and the first j of b.
    let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("fecth", "fetch"), 1);
        assert_eq!(
            closest("viz__rendr", ["viz__render", "llm__summarize"]),
            Some("viz__render")
        );
        assert_eq!(closest("zzz", ["viz__render"]), None);
    }
}
