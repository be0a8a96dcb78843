use baton_workflow::{Dag, Definition, Plan, StepRun, StepState, ToolCatalog, validate};
use graphviz_rust::dot_structures::{Attribute, EdgeTy, Graph, Id, Stmt, Vertex};
use serde_json::{Value, json};

use crate::common::plan;

use StepState::{Completed, Pending, Running};

/// fetch → (charts, summary) → publish, and audit → archive-old on the side.
fn fan_out_fan_in() -> Plan {
    plan(
        "name: weekly-report
steps:
  - {id: fetch, tool: warehouse__query, arguments: {sql: select 1}}
  - {id: charts, tool: viz__render, depends_on: [fetch]}
  - {id: summary, tool: llm__summarize, depends_on: [fetch]}
  - {id: publish, tool: docs__publish, depends_on: [charts, summary]}
  - {id: audit, tool: baton__sleep}
  - {id: archive-old, tool: baton__sleep, depends_on: [audit]}
",
    )
}

fn step_runs(durations: [Option<u64>; 6]) -> Vec<StepRun> {
    let states = [Completed, Completed, Running, Pending, Completed, Running];
    states
        .into_iter()
        .zip(durations)
        .map(|(state, duration_ms)| StepRun { state, duration_ms })
        .collect()
}

fn ids(plan: &Plan, dag: &Dag) -> Vec<String> {
    dag.critical_path()
        .iter()
        .map(|&i| plan.step(i).id.clone())
        .collect()
}

#[test]
fn critical_path_is_the_longest_chain_by_duration() {
    let plan = fan_out_fan_in();
    let cases = [
        // charts is slower than summary.
        (
            [100, 500, 200, 50, 100, 200],
            vec!["fetch", "charts", "publish"],
            650,
        ),
        // summary is slower than charts.
        (
            [100, 500, 900, 50, 100, 200],
            vec!["fetch", "summary", "publish"],
            1050,
        ),
        // A tie goes to the branch first in topological order.
        (
            [100, 500, 500, 50, 100, 200],
            vec!["fetch", "charts", "publish"],
            650,
        ),
        // The side branch is longest.
        (
            [100, 500, 200, 50, 400, 300],
            vec!["audit", "archive-old"],
            700,
        ),
    ];
    for (durations, path, ms) in cases {
        let runs = step_runs(durations.map(Some));
        let dag = Dag::new(&plan, &runs);
        assert_eq!(ids(&plan, &dag), path, "{durations:?}");
        assert_eq!(dag.critical_path_ms(), ms, "{durations:?}");
    }
}

#[test]
fn unknown_durations_count_as_zero() {
    let plan = fan_out_fan_in();
    let runs = step_runs([None, Some(10), None, None, Some(5), Some(6)]);
    let dag = Dag::new(&plan, &runs);
    assert_eq!(ids(&plan, &dag), ["audit", "archive-old"]);
    assert_eq!(dag.critical_path_ms(), 11);
    // Nothing known: the longest chain by steps.
    let runs = step_runs([None; 6]);
    let dag = Dag::new(&plan, &runs);
    assert_eq!(ids(&plan, &dag), ["fetch", "charts", "publish"]);
    assert_eq!(dag.critical_path_ms(), 0);
}

#[test]
fn json_export() {
    let plan = fan_out_fan_in();
    let runs = step_runs([Some(100), Some(500), Some(200), Some(50), Some(100), None]);
    let json = Dag::new(&plan, &runs).to_json();
    assert_eq!(
        json["nodes"][0],
        json!({"id": "fetch", "tool": "warehouse__query", "status": "completed",
               "duration_ms": 100, "estimated": false, "critical": true})
    );
    assert_eq!(
        json["nodes"][2],
        json!({"id": "summary", "tool": "llm__summarize", "status": "running",
               "duration_ms": 200, "estimated": true, "critical": false})
    );
    assert_eq!(
        json["nodes"][5],
        json!({"id": "archive-old", "tool": "baton__sleep", "status": "running",
               "duration_ms": null, "estimated": false, "critical": false})
    );
    assert_eq!(
        json["edges"],
        json!([
            {"from": "fetch", "to": "charts", "critical": true},
            {"from": "fetch", "to": "summary", "critical": false},
            {"from": "charts", "to": "publish", "critical": true},
            {"from": "summary", "to": "publish", "critical": false},
            {"from": "audit", "to": "archive-old", "critical": false},
        ])
    );
    assert_eq!(json["critical_path"], json!(["fetch", "charts", "publish"]));
    assert_eq!(json["critical_path_ms"], 650);
}

/// The text of a DOT id: quotes removed, `\"` and `\\` unescaped (other escapes, such as
/// a label's `\n`, stay).
fn unquote(id: &Id) -> String {
    match id {
        Id::Escaped(s) => {
            let mut out = String::new();
            let mut chars = s[1..s.len() - 1].chars();
            while let Some(c) = chars.next() {
                match (c, chars.clone().next()) {
                    ('\\', Some(next @ ('"' | '\\'))) => {
                        out.push(next);
                        chars.next();
                    }
                    _ => out.push(c),
                }
            }
            out
        }
        Id::Plain(s) | Id::Html(s) | Id::Anonymous(s) => s.clone(),
    }
}

fn attribute(attributes: &[Attribute], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|Attribute(k, _)| unquote(k) == key)
        .map(|Attribute(_, v)| unquote(v))
}

#[test]
fn dot_export_parses_and_marks_the_critical_path() {
    let plan = fan_out_fan_in();
    let runs = step_runs([
        Some(100),
        Some(500),
        Some(200),
        Some(50),
        Some(100),
        Some(200),
    ]);
    let dot = Dag::new(&plan, &runs).to_dot();
    let graph = graphviz_rust::parse(&dot).unwrap_or_else(|e| panic!("{e}\n{dot}"));
    let Graph::DiGraph { id, stmts, .. } = graph else {
        panic!("a digraph")
    };
    assert_eq!(unquote(&id), "weekly-report");

    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for stmt in stmts {
        match stmt {
            Stmt::Node(node) => nodes.push((unquote(&node.id.0), node.attributes)),
            Stmt::Edge(edge) => {
                let EdgeTy::Pair(Vertex::N(from), Vertex::N(to)) = edge.ty else {
                    panic!("edges are pairs of nodes")
                };
                edges.push((unquote(&from.0), unquote(&to.0), edge.attributes));
            }
            _ => {}
        }
    }
    assert_eq!(nodes.len(), 6);
    assert_eq!(edges.len(), 5);

    let critical: Vec<&str> = nodes
        .iter()
        .filter(|(_, a)| attribute(a, "color").as_deref() == Some("#d32f2f"))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(critical, ["fetch", "charts", "publish"]);
    let (_, fetch) = &nodes[0];
    assert_eq!(
        attribute(fetch, "label").as_deref(),
        Some("fetch\\nwarehouse__query\\ncompleted, 100 ms")
    );
    assert_eq!(attribute(fetch, "fillcolor").as_deref(), Some("#c8e6c9"));
    assert!(attribute(fetch, "style").unwrap().contains("bold"));
    let (_, summary) = &nodes[2];
    assert_eq!(
        attribute(summary, "label").as_deref(),
        Some("summary\\nllm__summarize\\nrunning, ~200 ms")
    );
    assert!(!attribute(summary, "style").unwrap().contains("bold"));

    let critical_edges: Vec<(&str, &str)> = edges
        .iter()
        .filter(|(_, _, a)| attribute(a, "color").as_deref() == Some("#d32f2f"))
        .map(|(f, t, _)| (f.as_str(), t.as_str()))
        .collect();
    assert_eq!(critical_edges, [("fetch", "charts"), ("charts", "publish")]);
    assert!(
        edges
            .iter()
            .any(|(f, t, a)| f == "audit" && t == "archive-old" && a.is_empty())
    );
}

struct AnyTool;

impl ToolCatalog for AnyTool {
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

#[test]
fn odd_names_are_escaped() {
    let definition = Definition::from_value(json!({
        "name": "quote \" back\\slash\\",
        "steps": [
            {"id": "a-1", "tool": "s__<b>\"#1\" & `x`\\"},
            {"id": "a_1", "tool": "s__t", "depends_on": ["a-1"]},
        ]
    }))
    .unwrap();
    let plan = validate(&definition, &AnyTool).unwrap();
    let runs = [StepRun {
        state: Completed,
        duration_ms: Some(1),
    }; 2];
    let dag = Dag::new(&plan, &runs);

    let graph = graphviz_rust::parse(&dag.to_dot()).unwrap();
    let Graph::DiGraph { id, stmts, .. } = graph else {
        panic!("a digraph")
    };
    assert_eq!(unquote(&id), "quote \" back\\slash\\");
    let labels: Vec<String> = stmts
        .iter()
        .filter_map(|s| match s {
            Stmt::Node(n) => attribute(&n.attributes, "label"),
            _ => None,
        })
        .collect();
    assert_eq!(labels[0], "a-1\\ns__<b>\"#1\" & `x`\\\\ncompleted, 1 ms");

    let mermaid = dag.to_mermaid();
    assert!(
        mermaid.contains(
            "s0_a_1[\"a-1<br/>s__#lt;b#gt;#quot;#35;1#quot; #amp; #96;x#96;\\<br/>completed, 1 ms\"]"
        ),
        "{mermaid}"
    );
    assert!(mermaid.contains("s1_a_1[\"a_1<br/>"), "{mermaid}");
    assert!(mermaid.contains("    s0_a_1 --> s1_a_1\n"), "{mermaid}");
}

#[test]
fn mermaid_export() {
    let plan = fan_out_fan_in();
    let runs = step_runs([Some(100), Some(500), Some(200), Some(50), Some(100), None]);
    let mermaid = Dag::new(&plan, &runs).to_mermaid();
    insta::assert_snapshot!(mermaid);

    // Structure, independently of the snapshot: the header, one line per edge in edge
    // order, and linkStyle naming exactly the critical edges by their position.
    let lines: Vec<&str> = mermaid.lines().map(str::trim).collect();
    assert_eq!(lines[0], "flowchart LR");
    let edge_lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("-->"))
        .collect();
    assert_eq!(
        edge_lines,
        [
            "s0_fetch --> s1_charts",
            "s0_fetch --> s2_summary",
            "s1_charts --> s3_publish",
            "s2_summary --> s3_publish",
            "s4_audit --> s5_archive_old",
        ]
    );
    assert!(lines.contains(&"linkStyle 0,2 stroke:#d32f2f,stroke-width:3px"));
    assert!(lines.contains(&"class s0_fetch,s1_charts,s3_publish critical"));
    assert!(lines.contains(&"class s0_fetch,s1_charts,s4_audit completed"));
    assert!(lines.contains(
        &"s5_archive_old[\"archive-old<br/>baton__sleep<br/>running, duration unknown\"]"
    ));
    for state in StepState::ALL {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("classDef {} ", state.as_str()))),
            "{state:?}"
        );
    }
}
