//! The DAG of a (running or finished) workflow as JSON, Graphviz DOT and Mermaid, with
//! the critical path marked.
//!
//! The **critical path** is the longest chain of dependent steps by duration: the chain
//! that decides how long the workflow takes. A step's duration is its actual one when
//! finished and an estimate otherwise ([`StepRun`]); an **unknown duration counts as
//! 0 ms**, so it never lengthens the path. Ties go to the chain with more steps (so with
//! nothing known the path is the longest chain by count), then to the chain whose steps
//! come first in [`Plan::topo_order`].

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::plan::{Plan, StepState};

/// What is known of one step's run, for an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepRun {
    /// The step's state now.
    pub state: StepState,
    /// Actual when the step finished, an estimate otherwise; `None` when unknown.
    pub duration_ms: Option<u64>,
}

impl StepRun {
    /// Whether `duration_ms` is an estimate (known, and the step has not finished).
    pub fn estimated(&self) -> bool {
        self.duration_ms.is_some() && !self.state.is_finished()
    }
}

/// A plan with its steps' runs and its critical path, ready to be rendered.
#[derive(Debug, Clone)]
pub struct Dag<'a> {
    plan: &'a Plan,
    runs: &'a [StepRun],
    critical_path: Vec<usize>,
    critical_path_ms: u64,
    on_path: Vec<bool>,
}

const CRITICAL_COLOUR: &str = "#d32f2f";

/// Fill and border colours per state, shared by DOT and Mermaid.
fn colours(state: StepState) -> (&'static str, &'static str) {
    match state {
        StepState::Pending => ("#ffffff", "#9e9e9e"),
        StepState::Running => ("#bbdefb", "#1565c0"),
        StepState::Completed => ("#c8e6c9", "#2e7d32"),
        StepState::Failed => ("#ffcdd2", "#c62828"),
        StepState::Cancelled => ("#e0e0e0", "#616161"),
        StepState::Skipped => ("#f5f5f5", "#bdbdbd"),
    }
}

impl<'a> Dag<'a> {
    /// `runs[i]` describes step `i` of the plan. Panics if the lengths differ.
    pub fn new(plan: &'a Plan, runs: &'a [StepRun]) -> Dag<'a> {
        assert_eq!(runs.len(), plan.steps().len(), "one run per step");
        let n = runs.len();
        let mut position = vec![0; n];
        for (p, &i) in plan.topo_order().iter().enumerate() {
            position[i] = p;
        }
        // Longest (ms, step count) chain ending at each step, and where it comes from.
        let mut best = vec![(0u64, 0usize); n];
        let mut previous = vec![None; n];
        for &i in plan.topo_order() {
            let mut dependencies = plan.dependencies(i).to_vec();
            dependencies.sort_by_key(|&d| position[d]);
            let mut longest = (0, 0);
            for d in dependencies {
                if best[d] > longest {
                    longest = best[d];
                    previous[i] = Some(d);
                }
            }
            let ms = runs[i].duration_ms.unwrap_or(0);
            best[i] = (longest.0.saturating_add(ms), longest.1 + 1);
        }
        let mut end = plan.topo_order()[0];
        for &i in plan.topo_order() {
            if best[i] > best[end] {
                end = i;
            }
        }
        let mut critical_path = vec![end];
        while let Some(p) = previous[*critical_path.last().expect("never empty")] {
            critical_path.push(p);
        }
        critical_path.reverse();
        let mut on_path = vec![false; n];
        for &i in &critical_path {
            on_path[i] = true;
        }
        Dag {
            plan,
            runs,
            critical_path,
            critical_path_ms: best[end].0,
            on_path,
        }
    }

    /// The critical path's steps, first to last.
    pub fn critical_path(&self) -> &[usize] {
        &self.critical_path
    }

    /// The critical path's length: the sum of its steps' known durations.
    pub fn critical_path_ms(&self) -> u64 {
        self.critical_path_ms
    }

    /// Whether the step is on the critical path.
    pub fn is_critical(&self, step: usize) -> bool {
        self.on_path[step]
    }

    /// Whether the edge `from -> to` joins two consecutive steps of the critical path.
    pub fn is_critical_edge(&self, from: usize, to: usize) -> bool {
        self.critical_path.windows(2).any(|w| w == [from, to])
    }

    /// Every edge `(dependency, dependant)`: by dependant in definition order, then by
    /// dependency index. The order of edges in all three exports.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        (0..self.runs.len())
            .flat_map(|to| {
                self.plan
                    .dependencies(to)
                    .iter()
                    .map(move |&from| (from, to))
            })
            .collect()
    }

    fn id(&self, step: usize) -> &str {
        &self.plan.step(step).id
    }

    fn duration_text(&self, step: usize) -> String {
        let run = self.runs[step];
        match run.duration_ms {
            None => "duration unknown".into(),
            Some(ms) if run.estimated() => format!("~{ms} ms"),
            Some(ms) => format!("{ms} ms"),
        }
    }

    /// The label lines of a node: id, tool, "state, duration".
    fn label_lines(&self, step: usize) -> [String; 3] {
        [
            self.id(step).to_string(),
            self.plan.step(step).tool.clone(),
            format!(
                "{}, {}",
                self.runs[step].state.as_str(),
                self.duration_text(step)
            ),
        ]
    }

    /// `{"nodes": [{"id", "tool", "status", "duration_ms", "estimated", "critical"}],
    /// "edges": [{"from", "to", "critical"}], "critical_path": [ids],
    /// "critical_path_ms": n}`; nodes in definition order.
    pub fn to_json(&self) -> Value {
        let nodes: Vec<Value> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, run)| {
                json!({
                    "id": self.id(i),
                    "tool": self.plan.step(i).tool,
                    "status": run.state,
                    "duration_ms": run.duration_ms,
                    "estimated": run.estimated(),
                    "critical": self.on_path[i],
                })
            })
            .collect();
        let edges: Vec<Value> = self
            .edges()
            .into_iter()
            .map(|(from, to)| {
                json!({
                    "from": self.id(from),
                    "to": self.id(to),
                    "critical": self.is_critical_edge(from, to),
                })
            })
            .collect();
        json!({
            "nodes": nodes,
            "edges": edges,
            "critical_path": self.critical_path.iter().map(|&i| self.id(i)).collect::<Vec<_>>(),
            "critical_path_ms": self.critical_path_ms,
        })
    }

    /// A Graphviz digraph, left to right: one box per step (filled by state, dashed when
    /// skipped) and the critical path bold and red.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "digraph {} {{",
            dot_string(&self.plan.definition().name)
        );
        out.push_str("  rankdir=LR;\n");
        out.push_str("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n");
        for (i, run) in self.runs.iter().enumerate() {
            let (fill, border) = colours(run.state);
            let mut style = String::from("rounded,filled");
            if run.state == StepState::Skipped {
                style.push_str(",dashed");
            }
            let (border, width) = if self.on_path[i] {
                style.push_str(",bold");
                (CRITICAL_COLOUR, 3)
            } else {
                (border, 1)
            };
            let label = self
                .label_lines(i)
                .map(|line| dot_escape(&line))
                .join("\\n");
            let _ = writeln!(
                out,
                "  {} [label=\"{label}\", style=\"{style}\", fillcolor=\"{fill}\", color=\"{border}\", penwidth={width}];",
                dot_string(self.id(i)),
            );
        }
        for (from, to) in self.edges() {
            let attributes = if self.is_critical_edge(from, to) {
                format!(" [color=\"{CRITICAL_COLOUR}\", penwidth=3, style=bold]")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {} -> {}{attributes};",
                dot_string(self.id(from)),
                dot_string(self.id(to)),
            );
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid `flowchart LR`: nodes `s<index>_<id>` (ids with `-` made safe), one
    /// class per state, a `critical` class and a `linkStyle` for the critical edges.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for i in 0..self.runs.len() {
            let label = self
                .label_lines(i)
                .map(|line| mermaid_escape(&line))
                .join("<br/>");
            let _ = writeln!(out, "    {}[\"{label}\"]", self.mermaid_id(i));
        }
        let mut critical_links = Vec::new();
        for (n, (from, to)) in self.edges().into_iter().enumerate() {
            let _ = writeln!(
                out,
                "    {} --> {}",
                self.mermaid_id(from),
                self.mermaid_id(to)
            );
            if self.is_critical_edge(from, to) {
                critical_links.push(n.to_string());
            }
        }
        for state in StepState::ALL {
            let (fill, border) = colours(state);
            let dashed = if state == StepState::Skipped {
                ",stroke-dasharray:5 5"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    classDef {} fill:{fill},stroke:{border}{dashed}",
                state.as_str()
            );
        }
        let _ = writeln!(
            out,
            "    classDef critical stroke:{CRITICAL_COLOUR},stroke-width:3px"
        );
        for state in StepState::ALL {
            let members: Vec<String> = (0..self.runs.len())
                .filter(|&i| self.runs[i].state == state)
                .map(|i| self.mermaid_id(i))
                .collect();
            if !members.is_empty() {
                let _ = writeln!(out, "    class {} {}", members.join(","), state.as_str());
            }
        }
        let critical: Vec<String> = self
            .critical_path
            .iter()
            .map(|&i| self.mermaid_id(i))
            .collect();
        let _ = writeln!(out, "    class {} critical", critical.join(","));
        if !critical_links.is_empty() {
            let _ = writeln!(
                out,
                "    linkStyle {} stroke:{CRITICAL_COLOUR},stroke-width:3px",
                critical_links.join(",")
            );
        }
        out
    }

    /// Step ids are `[a-z0-9_-]`; `-` is not safe in a Mermaid id, and the index keeps
    /// `a-b` and `a_b` apart.
    fn mermaid_id(&self, step: usize) -> String {
        format!("s{step}_{}", self.id(step).replace('-', "_"))
    }
}

/// A DOT quoted string: `\` and `"` escaped, newlines as `\n`.
fn dot_string(s: &str) -> String {
    format!("\"{}\"", dot_escape(s))
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Text for a quoted Mermaid label: characters Mermaid or HTML would read as markup become
/// entity codes.
fn mermaid_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '`' => out.push_str("#96;"),
            '\n' => out.push_str("<br/>"),
            c => out.push(c),
        }
    }
    out
}
