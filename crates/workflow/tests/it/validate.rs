use baton_workflow::{Definition, Problem, validate};
use serde_json::json;

use crate::common::{Catalog, WEEKLY_REPORT, plan, problems};

#[test]
fn the_example_is_valid() {
    let plan = plan(WEEKLY_REPORT);
    assert_eq!(plan.topo_order(), [0, 1, 2, 3]);
    assert_eq!(plan.dependencies(3), [1, 2]);
    assert_eq!(plan.dependants(0), [1, 2]);
    assert_eq!(plan.references(1).len(), 1);
    assert_eq!(
        plan.references(2)[0].to_string(),
        "steps.fetch.result.content[0].text"
    );
}

#[test]
fn workflow_level_limits() {
    assert_eq!(
        problems("name: x\nsteps: []\n"),
        ["a workflow needs at least one step"]
    );
    let long = "n".repeat(129);
    assert_eq!(
        problems(&format!(
            "name: {long}\nsteps: [{{id: a, tool: baton__sleep}}]\n"
        )),
        ["name is 129 characters long; at most 128"]
    );
    assert_eq!(
        problems("name: ''\nsteps: [{id: a, tool: baton__sleep}]\n"),
        ["name must not be empty"]
    );
    let many: Vec<_> = (0..1001)
        .map(|i| json!({"id": format!("s{i}"), "tool": "baton__sleep"}))
        .collect();
    let d = Definition::from_value(json!({"name": "big", "steps": many})).unwrap();
    let e = validate(&d, &Catalog::new()).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].message, "1001 steps; at most 1000");
    // Exactly the limit is fine: a 128-character name (in characters, not bytes) and
    // 1000 steps.
    let d = Definition::from_value(json!({"name": "é".repeat(128), "steps": many[..1000]}));
    assert!(validate(&d.unwrap(), &Catalog::new()).is_ok());
}

#[test]
fn ids_must_be_valid_and_unique() {
    let long = "a".repeat(65);
    // 40 characters, 80 bytes: the length is fine, the characters are not.
    let accented = "é".repeat(40);
    let p = problems(&format!(
        "name: x\nsteps:
  - {{id: a, tool: baton__sleep}}
  - {{id: Fetch, tool: baton__sleep}}
  - {{id: a, tool: baton__sleep}}
  - {{id: '', tool: baton__sleep}}
  - {{id: {long}, tool: baton__sleep}}
  - {{id: with space, tool: baton__sleep}}
  - {{id: {accented}, tool: baton__sleep}}
"
    ));
    assert_eq!(
        p,
        [
            "step `Fetch`: id contains `F`; ids use only a-z, 0-9, `_` and `-`".to_string(),
            "step `a`: id is used by more than one step (steps #1 and #3)".into(),
            "step #4 has an empty id".into(),
            format!("step `{long}`: id is 65 characters long; at most 64"),
            "step `with space`: id contains ` `; ids use only a-z, 0-9, `_` and `-`".into(),
            format!("step `{accented}`: id contains `é`; ids use only a-z, 0-9, `_` and `-`"),
        ]
    );
}

#[test]
fn depends_on_must_name_other_steps() {
    let p = problems(
        "name: x\nsteps:
  - {id: fetch, tool: baton__sleep}
  - {id: charts, tool: baton__sleep, depends_on: [fetch, fecth, charts, nothing]}
",
    );
    assert_eq!(
        p,
        [
            "step `charts`: depends on `fecth`, which is not a step of this workflow; did you mean `fetch`?",
            "step `charts`: depends on itself",
            "step `charts`: depends on `nothing`, which is not a step of this workflow",
        ]
    );
    // Listing a dependency twice is harmless.
    let plan = plan(
        "name: x\nsteps:
  - {id: a, tool: baton__sleep}
  - {id: b, tool: baton__sleep, depends_on: [a, a]}
",
    );
    assert_eq!(plan.dependencies(1), [0]);
}

#[test]
fn cycles_are_named() {
    let p = problems(
        "name: x\nsteps:
  - {id: a, tool: baton__sleep, depends_on: [b]}
  - {id: b, tool: baton__sleep, depends_on: [c]}
  - {id: c, tool: baton__sleep, depends_on: [a]}
  - {id: after, tool: baton__sleep, depends_on: [c]}
  - {id: x, tool: baton__sleep, depends_on: [y]}
  - {id: y, tool: baton__sleep, depends_on: [x]}
  - {id: ok, tool: baton__sleep}
",
    );
    assert_eq!(
        p,
        [
            "step `a`: depends_on forms a cycle: a -> b -> c -> a (`->` reads \"depends on\")",
            "step `x`: depends_on forms a cycle: x -> y -> x (`->` reads \"depends on\")",
        ]
    );
}

#[test]
fn unknown_tools_get_a_suggestion() {
    let p = problems(
        "name: x\nsteps:
  - {id: a, tool: viz__rendr}
  - {id: b, tool: nothing__like_it}
  - {id: c, tool: ''}
",
    );
    assert_eq!(
        p,
        [
            "step `a`: unknown tool `viz__rendr`; did you mean `viz__render`?",
            "step `b`: unknown tool `nothing__like_it`",
            "step `c`: tool must not be empty",
        ]
    );
}

#[test]
fn step_limits() {
    let p = problems(
        "name: x\nsteps:
  - {id: a, tool: baton__sleep, retry: {max_attempts: 0}, timeout_ms: 0}
  - {id: b, tool: baton__sleep, retry: {max_attempts: 101}, timeout_ms: 604800001}
  - {id: c, tool: baton__sleep, queue: Bad Queue}
  - {id: d, tool: baton__sleep, retry: {max_attempts: 100}, timeout_ms: 604800000, queue: reports.eu}
",
    );
    assert_eq!(
        p,
        [
            "step `a`: retry.max_attempts must be at least 1",
            "step `a`: timeout_ms must be at least 1",
            "step `b`: retry.max_attempts is 101; at most 100",
            "step `b`: timeout_ms is 604800001; at most 604800000 (7 days)",
            "step `c`: queue name `Bad Queue` contains `B`; allowed: a-z, 0-9, -, _, .",
        ]
    );
}

#[test]
fn references_must_parse_and_point_to_ancestors() {
    let p = problems(
        r#"name: x
steps:
  - {id: fetch, tool: baton__sleep}
  - {id: summary, tool: baton__sleep, depends_on: [fetch]}
  - id: charts
    tool: viz__render
    depends_on: [fetch]
    arguments:
      ok: "${steps.fetch.result}"
      sibling: "${steps.summary.result.text}"
      again: "and ${steps.summary.result.more}"
      missing: "${steps.nope.result}"
      own: ["${steps.charts.result}"]
      bad: "x ${steps.fetch.reslt} y"
"#,
    );
    assert_eq!(
        p,
        [
            "step `charts`: argument `bad`: bad reference `${steps.fetch.reslt}`: \
             `steps.fetch.reslt` is not supported; only `steps.fetch.result` can be referenced",
        ],
        "a syntax error hides the other references of the step"
    );
    let p = problems(
        r#"name: x
steps:
  - {id: fetch, tool: baton__sleep}
  - {id: summary, tool: baton__sleep, depends_on: [fetch]}
  - id: charts
    tool: viz__render
    depends_on: [fetch]
    arguments:
      ok: "${steps.fetch.result}"
      sibling: "${steps.summary.result.text}"
      again: "and ${steps.summary.result.more}"
      missing: "${steps.nope.result}"
      own: ["${steps.charts.result}"]
"#,
    );
    // serde_json keeps object keys sorted, so the references come in key order.
    assert_eq!(
        p,
        [
            "step `charts`: references `summary`, which is not among its dependencies; add it to depends_on",
            "step `charts`: references `steps.nope.result`, but there is no step `nope`",
            "step `charts`: references its own result (`steps.charts.result`)",
        ]
    );
}

#[test]
fn transitive_ancestors_may_be_referenced() {
    let plan = plan(
        r#"name: x
steps:
  - {id: a, tool: baton__sleep}
  - {id: b, tool: baton__sleep, depends_on: [a]}
  - {id: c, tool: baton__sleep, depends_on: [b], arguments: {v: "${steps.a.result.v}"}}
"#,
    );
    assert_eq!(plan.ancestors(2), [0, 1]);
}

#[test]
fn literal_arguments_are_checked_against_the_schema() {
    let p =
        problems("name: x\nsteps:\n  - {id: fetch, tool: warehouse__query, arguments: {sql: 5}}\n");
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with(
            "step `fetch`: arguments do not match the input schema of `warehouse__query`: at `/sql`"
        ),
        "{p:?}"
    );
    let p = problems("name: x\nsteps:\n  - {id: fetch, tool: warehouse__query}\n");
    assert!(p[0].contains("\"sql\" is a required property"), "{p:?}");
    // With a reference in the arguments the schema check waits for the run.
    plan(
        r#"name: x
steps:
  - {id: a, tool: baton__sleep}
  - {id: fetch, tool: warehouse__query, depends_on: [a], arguments: {limit: "${steps.a.result.n}"}}
"#,
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems(
        r#"name: x
steps:
  - {id: Bad, tool: baton__sleep}
  - {id: a, tool: viz__rendr, depends_on: [b]}
  - {id: b, tool: baton__sleep, depends_on: [a], timeout_ms: 0}
  - {id: c, tool: baton__sleep, arguments: {v: "${steps.a.result}"}}
  - {id: d, tool: warehouse__query, arguments: {}}
  - {id: e, tool: baton__sleep, depends_on: [zzz], arguments: {v: "${oops}"}}
"#,
    );
    let expected = [
        "step `Bad`: id contains `B`",
        "step `a`: unknown tool `viz__rendr`; did you mean `viz__render`?",
        "step `b`: timeout_ms must be at least 1",
        "step `c`: references `a`, which is not among its dependencies",
        "step `d`: arguments do not match the input schema",
        "step `e`: depends on `zzz`",
        "step `e`: argument `v`: bad reference `${oops}`: unknown root `oops`",
        "step `a`: depends_on forms a cycle: a -> b -> a",
    ];
    assert_eq!(p.len(), expected.len(), "{p:#?}");
    for (got, want) in p.iter().zip(expected) {
        assert!(got.starts_with(want), "{got:?} should start with {want:?}");
    }
}

#[test]
fn problems_serialise_and_display() {
    let step = Problem {
        step: Some("charts".into()),
        message: "depends on itself".into(),
    };
    let workflow = Problem {
        step: None,
        message: "a workflow needs at least one step".into(),
    };
    assert_eq!(
        serde_json::to_value([&step, &workflow]).unwrap(),
        json!([
            {"step": "charts", "message": "depends on itself"},
            {"step": null, "message": "a workflow needs at least one step"}
        ])
    );
    assert_eq!(step.to_string(), "step `charts`: depends on itself");
    assert_eq!(workflow.to_string(), "a workflow needs at least one step");
}

#[test]
fn values_the_store_cannot_hold_are_refused_at_submit() {
    let mut deep = json!(1);
    for _ in 0..70 {
        deep = json!([deep]);
    }
    let many: Vec<String> = (0..1001).map(|_| "${steps.a.result}".to_string()).collect();
    let definition = json!({
        "name": "bad\u{0}name",
        "metadata": {"deep": deep},
        "steps": [
            {"id": "a", "tool": "baton__echo"},
            {"id": "b", "tool": "baton__echo", "depends_on": ["a"], "arguments": {"many": many}},
            {"id": "c", "tool": "baton__echo", "arguments": {"deep": deep}},
        ],
    });
    let d = Definition::from_value(definition).unwrap();
    let problems: Vec<String> = validate(&d, &Catalog::new())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    for fragment in [
        "name must not contain a NUL",
        "metadata nests deeper than 64",
        "step `b`: arguments hold 1001 references; at most 1000",
        "step `c`: arguments nests deeper than 64",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(fragment)),
            "{fragment} not in {problems:#?}"
        );
    }
}
