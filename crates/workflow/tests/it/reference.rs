use std::collections::HashMap;

use baton_workflow::{
    Reference, ResolveError, ResolveLimits, Segment, Source, references, resolve, resolve_with,
};
use serde_json::{Value, json};

fn field(name: &str) -> Segment {
    Segment::Field(name.into())
}

#[test]
fn parses_paths() {
    let r = Reference::parse(r#"steps.fetch.result.content[0].text["a \"b\" }"].x-y_1"#).unwrap();
    assert_eq!(r.source, Source::StepResult("fetch".into()));
    assert_eq!(r.step(), Some("fetch"));
    assert_eq!(
        r.path,
        [
            field("content"),
            Segment::Index(0),
            field("text"),
            field("a \"b\" }"),
            field("x-y_1"),
        ]
    );
    // Display is the canonical text, which parses back to the same reference.
    let text = r.to_string();
    assert_eq!(
        text,
        r#"steps.fetch.result.content[0].text["a \"b\" }"].x-y_1"#
    );
    assert_eq!(Reference::parse(&text).unwrap(), r);
    assert_eq!(
        Reference::parse(r#"steps.a.result["plain"]"#)
            .unwrap()
            .to_string(),
        "steps.a.result.plain"
    );
}

#[test]
fn syntax_errors_say_what_is_wrong() {
    for (text, message) in [
        ("", "empty reference"),
        ("workflow.name", "unknown root `workflow`"),
        ("steps", "expected `.` after `steps`"),
        ("steps..result", "expected a step id after `steps.`"),
        ("steps.a.status", "`steps.a.status` is not supported"),
        ("steps.a.result.", "expected a field name after `.`"),
        (
            "steps.a.result[x]",
            "expected an index or a quoted key after `[`",
        ),
        ("steps.a.result[1", "expected `]`"),
        (r#"steps.a.result["x"#, "unterminated quoted key"),
        (
            r#"steps.a.result["\n"]"#,
            "only `\\\"` and `\\\\` are escapes",
        ),
        ("steps.a.result[99999999999999999999999]", "too large"),
        ("steps.a.result x", "unexpected ` ` at position 15"),
    ] {
        let e = Reference::parse(text).unwrap_err();
        assert!(e.contains(message), "{text:?}: {e}");
    }
}

#[test]
fn finds_references_at_any_depth() {
    let args = json!({
        "a": "${steps.one.result}",
        "b": [1, {"c": "x ${steps.two.result.k} y ${ steps.three.result[2] }"}],
        "d": "$${steps.not.result} and $5",
        "${steps.key.result}": "keys are not read",
    });
    let found: Vec<String> = references(&args)
        .unwrap()
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        found,
        [
            "steps.one.result",
            "steps.two.result.k",
            "steps.three.result[2]"
        ]
    );
}

#[test]
fn reports_every_bad_string_with_its_location() {
    let args = json!({
        "ok": "${steps.a.result}",
        "list": ["fine", "before ${steps.a.reslt} after"],
        "nested": {"odd key": "${steps.a.result"},
    });
    let errors = references(&args).unwrap_err();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].at, "list[1]");
    assert_eq!(errors[0].text, "${steps.a.reslt}");
    assert_eq!(
        errors[0].to_string(),
        "argument `list[1]`: bad reference `${steps.a.reslt}`: `steps.a.reslt` is not supported; \
         only `steps.a.result` can be referenced"
    );
    assert_eq!(errors[1].at, r#"nested["odd key"]"#);
    assert_eq!(errors[1].text, "${steps.a.result");
    assert_eq!(errors[1].message, "missing closing `}`");
}

fn results() -> HashMap<&'static str, Value> {
    HashMap::from([
        (
            "fetch",
            json!({
                "content": [{"type": "text", "text": "42 rows"}],
                "structuredContent": {"rows": [[1, "a"], [2, "b"]], "count": 2, "ok": true, "none": null},
            }),
        ),
        ("plain", json!("just a string")),
    ])
}

fn run(arguments: Value) -> Result<Value, ResolveError> {
    let results = results();
    resolve(&arguments, |step| results.get(step))
}

#[test]
fn a_whole_string_reference_becomes_the_value() {
    let out = run(json!({
        "rows": "${steps.fetch.result.structuredContent.rows}",
        "count": "${steps.fetch.result.structuredContent.count}",
        "ok": "${steps.fetch.result.structuredContent.ok}",
        "none": "${steps.fetch.result.structuredContent.none}",
        "cell": "${steps.fetch.result.structuredContent.rows[1][1]}",
        "deep": {"list": [{"all": "${steps.plain.result}"}]},
        "untouched": [1, true, null, "no refs", "$ alone"],
    }))
    .unwrap();
    assert_eq!(
        out,
        json!({
            "rows": [[1, "a"], [2, "b"]],
            "count": 2,
            "ok": true,
            "none": null,
            "cell": "b",
            "deep": {"list": [{"all": "just a string"}]},
            "untouched": [1, true, null, "no refs", "$ alone"],
        })
    );
}

#[test]
fn references_inside_text_are_interpolated() {
    let out = run(json!({
        "text": "Summary of: ${steps.fetch.result.content[0].text}",
        "mixed": "n=${steps.fetch.result.structuredContent.count}, rows=${steps.fetch.result.structuredContent.rows}, none=${steps.fetch.result.structuredContent.none}",
        "escaped": "$${steps.fetch.result} costs $5 and ${steps.plain.result}",
        "only_escape": "$${not a reference}",
    }))
    .unwrap();
    assert_eq!(out["text"], "Summary of: 42 rows");
    assert_eq!(out["mixed"], r#"n=2, rows=[[1,"a"],[2,"b"]], none=null"#);
    assert_eq!(
        out["escaped"],
        "${steps.fetch.result} costs $5 and just a string"
    );
    assert_eq!(out["only_escape"], "${not a reference}");
}

#[test]
fn missing_paths_say_where_they_stopped() {
    for (reference, message) in [
        (
            "steps.fetch.result.structuredContent.rowz",
            "steps.fetch.result.structuredContent.rowz: `structuredContent` has no field `rowz`",
        ),
        (
            "steps.fetch.result.nothing",
            "steps.fetch.result.nothing: `result` has no field `nothing`",
        ),
        (
            "steps.fetch.result.content[3]",
            "steps.fetch.result.content[3]: `content` has 1 item, so there is no index 3",
        ),
        (
            "steps.fetch.result.structuredContent.rows[0][5]",
            "steps.fetch.result.structuredContent.rows[0][5]: `structuredContent.rows[0]` has 2 items, so there is no index 5",
        ),
        (
            "steps.fetch.result.structuredContent.count.x",
            "steps.fetch.result.structuredContent.count.x: `structuredContent.count` is a number, not an object, so it has no field `x`",
        ),
        (
            "steps.plain.result[0]",
            "steps.plain.result[0]: `result` is a string, not an array, so it has no index 0",
        ),
        (
            "steps.later.result",
            "steps.later.result: step `later` has no result",
        ),
    ] {
        let e = run(json!({"nested": ["x", format!("${{{reference}}}")]})).unwrap_err();
        assert_eq!(e.to_string(), message);
        match e {
            ResolveError::Missing { step, .. } | ResolveError::NoResult { step, .. } => {
                assert_eq!(step, reference.split('.').nth(1).unwrap())
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Interpolated references fail the same way.
    let e = run(json!({"t": "a ${steps.fetch.result.x} b"})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "steps.fetch.result.x: `result` has no field `x`"
    );
}

#[test]
fn resolve_reports_syntax_errors() {
    let e = run(json!({"t": "${steps.fetch}"})).unwrap_err();
    assert!(matches!(e, ResolveError::Syntax(_)), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("argument `t`: bad reference `${steps.fetch}`"),
        "{e}"
    );
}

#[test]
fn resolved_arguments_are_bounded_in_size_before_they_are_built() {
    let big = json!({"blob": "x".repeat(10_000)});
    let results = HashMap::from([("a", big)]);
    // 100,000 copies of a 10 kB value would be a gigabyte; the limit stops it early.
    let arguments = json!({"many": vec!["${steps.a.result}"; 100_000]});
    let limits = ResolveLimits {
        max_bytes: 1024 * 1024,
        max_depth: 64,
    };
    let started = std::time::Instant::now();
    let err = resolve_with(&arguments, |s| results.get(s), limits).unwrap_err();
    assert!(
        matches!(&err, ResolveError::TooLarge { limit, .. } if *limit == 1024 * 1024),
        "{err}"
    );
    assert!(
        err.to_string().contains("larger than 1048576 bytes"),
        "{err}"
    );
    // Interpolated into text, the same.
    let arguments = json!({"text": "${steps.a.result} ".repeat(1_000)});
    assert!(matches!(
        resolve_with(&arguments, |s| results.get(s), limits),
        Err(ResolveError::TooLarge { .. })
    ));
    // Under the limit, it resolves.
    let arguments = json!({"few": vec!["${steps.a.result}"; 10]});
    let out = resolve_with(&arguments, |s| results.get(s), limits).unwrap();
    assert_eq!(out["few"].as_array().unwrap().len(), 10);
    // Not a timing assertion: the point is that the work stops at the limit, which the
    // error above proves; the elapsed time is printed for whoever looks.
    eprintln!("refused in {:?}", started.elapsed());
}

#[test]
fn resolved_arguments_are_bounded_in_depth() {
    let mut deep = json!(1);
    for _ in 0..60 {
        deep = json!({ "k": deep });
    }
    let results = HashMap::from([("a", deep)]);
    // 60 levels fit at the top, not under 5 more levels of the arguments' own.
    assert!(resolve(&json!({"v": "${steps.a.result}"}), |s| results.get(s)).is_ok());
    let err = resolve(
        &json!({"a": {"b": {"c": {"d": {"e": "${steps.a.result}"}}}}}),
        |s| results.get(s),
    )
    .unwrap_err();
    assert!(
        matches!(err, ResolveError::TooDeep { limit: 64, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("deeper than 64 levels"), "{err}");
}
