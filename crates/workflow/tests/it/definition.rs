use baton_core::submit::Priority;
use baton_workflow::{Definition, Format, OnFailure, Retry};
use serde_json::json;

use crate::common::WEEKLY_REPORT;

#[test]
fn parses_the_yaml_example() {
    let d = Definition::parse(WEEKLY_REPORT).unwrap();
    assert_eq!(d.name, "weekly-report");
    assert_eq!(d.on_failure, OnFailure::FailFast);
    let ids: Vec<&str> = d.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["fetch", "charts", "summary", "publish"]);
    let [fetch, charts, _, publish] = &d.steps[..] else {
        panic!("four steps")
    };
    assert_eq!(fetch.tool, "warehouse__query");
    assert_eq!(fetch.retry, Some(Retry { max_attempts: 3 }));
    assert_eq!(json!(fetch.arguments), json!({"sql": "select 1"}));
    assert_eq!(charts.depends_on, ["fetch"]);
    assert_eq!(
        charts.arguments["rows"],
        "${steps.fetch.result.structuredContent.rows}"
    );
    assert_eq!(publish.depends_on, ["charts", "summary"]);
    assert_eq!(publish.timeout_ms, Some(60000));
}

#[test]
fn a_step_becomes_a_submit_request() {
    let d = Definition::parse(
        "name: x\nsteps:\n  - {id: a, tool: t__a, retry: {max_attempts: 4}, timeout_ms: 9, priority: low, queue: q}\n  - {id: b, tool: t__b}\n",
    )
    .unwrap();
    let r = d.steps[0].submit_request(json!({"k": 1}));
    assert_eq!(r.tool, "t__a");
    assert_eq!(r.arguments, Some(json!({"k": 1})));
    assert_eq!(
        (r.max_attempts, r.timeout_ms, r.priority, r.queue.as_deref()),
        (Some(4), Some(9), Some(Priority(25)), Some("q"))
    );
    let r = d.steps[1].submit_request(json!({}));
    assert_eq!(
        (r.max_attempts, r.timeout_ms, r.priority, r.queue),
        (None, None, None, None)
    );
    assert_eq!(
        (r.run_at, r.delay_ms, r.idempotency_key),
        (None, None, None)
    );
}

#[test]
fn defaults() {
    let d = Definition::parse("name: x\nsteps:\n  - id: a\n    tool: baton__sleep\n").unwrap();
    assert_eq!(d.on_failure, OnFailure::FailFast);
    assert_eq!(d.description, None);
    assert_eq!(d.metadata, None);
    let s = &d.steps[0];
    assert!(s.arguments.is_empty());
    assert!(s.depends_on.is_empty());
    assert_eq!(
        (s.retry, s.timeout_ms, s.priority, s.queue.as_deref()),
        (None, None, None, None)
    );
}

#[test]
fn json_and_yaml_read_the_same_definition() {
    let yaml = Definition::parse(WEEKLY_REPORT).unwrap();
    let text = serde_json::to_string_pretty(&yaml).unwrap();
    assert_eq!(Definition::parse(&text).unwrap(), yaml);
    let value = serde_json::to_value(&yaml).unwrap();
    assert_eq!(Definition::from_value(value).unwrap(), yaml);
}

#[test]
fn optional_fields() {
    let d = Definition::parse(
        r#"{
          "name": "x", "description": "d", "on_failure": "continue", "metadata": {"team": "a"},
          "steps": [
            {"id": "a", "tool": "t__a", "priority": "high", "queue": "reports"},
            {"id": "b", "tool": "t__b", "priority": 7}
          ]
        }"#,
    )
    .unwrap();
    assert_eq!(d.on_failure, OnFailure::Continue);
    assert_eq!(d.description.as_deref(), Some("d"));
    assert_eq!(json!(d.metadata), json!({"team": "a"}));
    assert_eq!(d.steps[0].priority, Some(Priority(75)));
    assert_eq!(d.steps[0].queue.as_deref(), Some("reports"));
    assert_eq!(d.steps[1].priority, Some(Priority(7)));
}

#[test]
fn unknown_yaml_key_names_its_path_and_line() {
    let text =
        "name: x\nsteps:\n  - id: a\n    tool: t__a\n  - id: b\n    tool: t__b\n    argumnts: {}\n";
    let e = Definition::parse(text).unwrap_err();
    assert_eq!(e.format, Format::Yaml);
    assert_eq!(e.path.as_deref(), Some("steps[1].argumnts"));
    assert!(e.message.contains("unknown field `argumnts`"), "{e}");
    assert_eq!((e.line, e.column), (Some(7), Some(5)));
    assert!(
        e.to_string()
            .starts_with("steps[1].argumnts: unknown field `argumnts`"),
        "{e}"
    );
    assert!(e.to_string().ends_with("(YAML line 7, column 5)"), "{e}");
}

#[test]
fn unknown_keys_at_every_level() {
    for (text, path) in [
        (r#"{"name": "x", "steps": [], "naem": 1}"#, "naem"),
        (
            r#"{"name": "x", "steps": [{"id": "a", "tool": "t", "retry": {"max_attempt": 3}}]}"#,
            "steps[0].retry.max_attempt",
        ),
        (
            r#"{"name": "x", "steps": [{"id": "a", "tool": "t", "dependson": []}]}"#,
            "steps[0].dependson",
        ),
    ] {
        let e = Definition::parse(text).unwrap_err();
        assert_eq!(e.format, Format::Json, "{text}");
        assert_eq!(e.path.as_deref(), Some(path), "{text}");
        assert!(e.message.starts_with("unknown field"), "{e}");
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.to_string().contains("(JSON line 1, column"), "{e}");
    }
}

#[test]
fn json_value_errors_name_the_path() {
    let e = Definition::from_value(json!({
        "name": "x",
        "steps": [{"id": "a", "tool": "t", "timeout": 5}]
    }))
    .unwrap_err();
    assert_eq!(e.format, Format::Value);
    assert_eq!(e.path.as_deref(), Some("steps[0].timeout"));
    assert_eq!(e.line, None);
    assert!(e.message.contains("unknown field `timeout`"), "{e}");
}

#[test]
fn wrong_types_and_missing_keys() {
    let cases = [
        (
            "name: x\nsteps:\n  - id: a\n    tool: t\n    arguments: 3\n",
            Some("steps[0].arguments"),
            "expected a mapping",
        ),
        (
            "name: x\nsteps:\n  - id: a\n",
            Some("steps[0]"),
            "missing field `tool`",
        ),
        ("steps: []\n", None, "missing field `name`"),
        ("name: x\nsteps: 5\n", Some("steps"), "expected a list"),
        (
            "name: x\non_failure: sometimes\nsteps: []\n",
            Some("on_failure"),
            "sometimes",
        ),
        (
            "name: x\nsteps:\n  - {id: a, tool: t, priority: urgent}\n",
            Some("steps[0].priority"),
            "unknown priority `urgent`",
        ),
        (
            "name: x\nsteps:\n  - {id: a, tool: t, priority: 101}\n",
            Some("steps[0].priority"),
            "out of range",
        ),
        (
            "name: x\nname: y\nsteps: []\n",
            None,
            "duplicate mapping key: name",
        ),
    ];
    for (text, path, message) in cases {
        let e = Definition::parse(text).unwrap_err();
        assert_eq!(e.format, Format::Yaml, "{text}");
        assert_eq!(e.path.as_deref(), path, "{text}: {e}");
        assert!(e.message.contains(message), "{text}: {e}");
        assert!(!e.message.contains("Options"), "{text}: {e}");
        assert!(e.line.is_some(), "{text}: {e}");
    }
}

#[test]
fn syntax_errors_use_the_format_of_the_text() {
    let e = Definition::parse("\n  {\"name\": \"x\",\n").unwrap_err();
    assert_eq!(e.format, Format::Json);
    assert_eq!(e.line, Some(3), "{e}");
    // A YAML flow mapping also starts with `{`: JSON rules, JSON messages.
    let e = Definition::parse("{name: x, steps: []}").unwrap_err();
    assert_eq!(e.format, Format::Json);
    assert!(e.message.contains("key must be a string"), "{e}");
    let e = Definition::parse("{\"name\": \"x\", \"steps\": []} trailing").unwrap_err();
    assert_eq!(e.format, Format::Json);
    assert!(e.message.contains("trailing characters"), "{e}");

    let e = Definition::parse("name: x\nsteps: [\n  - a\n").unwrap_err();
    assert_eq!(e.format, Format::Yaml);
    assert!(e.line.is_some(), "{e}");
    for blank in ["", " \n\n"] {
        let e = Definition::parse(blank).unwrap_err();
        assert_eq!(e.message, "the definition is empty");
    }
}
