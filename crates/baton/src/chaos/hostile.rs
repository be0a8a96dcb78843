//! Hostile input: NUL bytes and odd Unicode in arguments, error messages, idempotency
//! keys, metadata and workflow definitions; very long strings; bodies too deep,
//! malformed or of the wrong type; hostile ids in paths. Each must get a 2xx or a 4xx,
//! never a 5xx, and must not harm the requests around it.

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Body, Client};
use super::cluster::SERVER;
use super::history::{Expect, OpKind};

/// Strings that are valid Unicode but unusual: NUL, controls, right-to-left override,
/// byte order mark, combining marks, astral characters, noncharacters.
const ODD: &[&str] = &[
    "\u{0}",
    "a\u{0}b",
    "\u{0}\u{0}\u{0}",
    "\u{1}\u{7f}\u{9f}",
    "\u{202e}desrever\u{202c}",
    "\u{feff}bom",
    "e\u{301}\u{301}\u{301}",
    "🦀🧨\u{200d}🔥",
    "\u{10ffff}\u{fffe}\u{ffff}",
    "\u{fffd}",
    "𝕳𝖊𝖑𝖑𝖔",
    "line\nbreak\r\n\ttab",
    "\\u0000 escaped, not a NUL",
    "'; DROP TABLE tasks; --",
    "${steps.x.result}",
    "%00%2e%2e%2f",
];

pub fn odd_text(rng: &mut StdRng) -> String {
    let mut s = String::new();
    for _ in 0..rng.random_range(1..4) {
        s.push_str(ODD.choose(rng).expect("odd strings"));
    }
    s
}

/// An idempotency key that is odd but storable (no NUL).
pub fn odd_key(rng: &mut StdRng) -> String {
    let key = format!("k{}{}", rng.random::<u32>(), odd_text(rng));
    key.replace('\0', "\u{2400}")
}

fn long(n: usize, rng: &mut StdRng) -> String {
    let unit = ODD.choose(rng).expect("odd strings");
    let mut s = String::with_capacity(n);
    while s.len() < n {
        s.push_str(unit);
        s.push('x');
    }
    s
}

fn nested(depth: usize) -> Value {
    let mut v = json!("bottom");
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

/// Sends one hostile request.
pub async fn one(cx: &mut Client<'_>) {
    let n = cx.n;
    let odd = odd_text(cx.rng);
    let json = |v: Value| Body::Json(v);
    let (method, path, body, retryable): (Method, String, Body, bool) = match cx
        .rng
        .random_range(0..24)
    {
        0 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": "baton__echo",
            "arguments": {format!("k{odd}"): odd, "nul": "a\u{0}b", "n": n}})),
            false,
        ),
        // A NUL in an error message the engine must store.
        1 | 2 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": "baton__fail",
            "arguments": {"message": format!("boom\u{0}{odd}"), "retryable": cx.rng.random_bool(0.5)},
            "max_attempts": cx.rng.random_range(1..3)})),
            true,
        ),
        3 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": "baton__fail",
            "arguments": {"message": long(9_990, cx.rng)}, "max_attempts": 1})),
            true,
        ),
        4 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": "baton__fail",
            "arguments": {"message": long(20_000, cx.rng)}})),
            false,
        ),
        5 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": "baton__echo",
            "arguments": {}, "idempotency_key": format!("nul\u{0}{n}")})),
            false,
        ),
        6 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": "baton__echo",
            "arguments": {}, "idempotency_key": odd_key(cx.rng)})),
            false,
        ),
        7 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": "baton__echo",
            "arguments": {}, "idempotency_key": long(5_000, cx.rng).replace('\0', "")})),
            false,
        ),
        8 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": "baton__echo",
            "arguments": {"n": n}, "metadata": {format!("m\u{0}{odd}"): odd, "deep": nested(20)}})),
            false,
        ),
        9 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": "baton__echo",
            "arguments": {"big": long(200_000, cx.rng)}})),
            false,
        ),
        10 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": "baton__echo",
            "arguments": {"deep": nested(100)}})),
            false,
        ),
        11 => (
            Method::POST,
            "/v1/tasks".into(),
            Body::Raw(
                r#"{"tool":"baton__echo","arguments":{"s":"\ud800 lone surrogate"}}"#.into(),
                "application/json",
            ),
            false,
        ),
        12 => (
            Method::POST,
            "/v1/tasks".into(),
            Body::Raw(
                r#"{"tool": "baton__echo", "argu"#.into(),
                "application/json",
            ),
            false,
        ),
        13 => (
            Method::POST,
            "/v1/tasks".into(),
            Body::Raw(r#"{"tool":"baton__echo"}"#.into(), "text/plain"),
            false,
        ),
        14 => {
            let tool = ["baton__echo\u{0}", "", "baton__", "__echo", "t__nope"]
                .choose(cx.rng)
                .expect("tools");
            (
                Method::POST,
                "/v1/tasks".into(),
                json(json!({"tool": tool, "arguments": {}, "queue": odd})),
                false,
            )
        }
        // Upstream calls carrying NUL and odd text, and answers holding them.
        15 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": format!("{SERVER}__echo"),
            "arguments": {"text": format!("nul\u{0}{odd}")}})),
            false,
        ),
        16 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": format!("{SERVER}__fail_tool"),
            "arguments": {"message": format!("tool\u{0}{odd}")}, "max_attempts": 1})),
            true,
        ),
        17 => (
            Method::POST,
            "/v1/tasks".into(),
            json(json!({"tool": format!("{SERVER}__effect"),
            "arguments": {"ms": -1}})),
            false,
        ),
        18 => {
            let mut tasks: Vec<Value> = (0..5)
                .map(|i| json!({"tool": "baton__fail", "arguments": {"message": format!("b{i}\u{0}{odd}")}, "max_attempts": 1}))
                .collect();
            tasks.push(
                json!({"tool": "baton__echo", "arguments": {"v": odd}, "metadata": {"m": "\u{0}"}}),
            );
            (
                Method::POST,
                "/v1/tasks/batch".into(),
                json(json!({"tasks": tasks})),
                true,
            )
        }
        19 => {
            // One bad entry refuses the whole batch.
            let tasks = json!([{"tool": "baton__echo", "arguments": {}}, {"tool": "baton__echo", "idempotency_key": "x\u{0}"}]);
            (
                Method::POST,
                "/v1/tasks/batch".into(),
                json(json!({"tasks": tasks})),
                false,
            )
        }
        20 => {
            let def = json!({"name": format!("hostile {odd}"), "steps": [
                {"id": "a", "tool": "baton__echo", "arguments": {"v": format!("\u{0}{odd}")}},
                {"id": "b", "tool": "baton__fail", "depends_on": ["a"], "retry": {"max_attempts": 1},
                 "arguments": {"message": "${steps.a.result.structuredContent.v}"}}]});
            (Method::POST, "/v1/workflows".into(), json(def), false)
        }
        21 => {
            let def = json!({"name": "bad", "steps": [{"id": format!("s\u{0}{odd}"), "tool": "baton__echo"},
                {"id": "x", "tool": "baton__echo", "depends_on": ["nope", "x"]}]});
            (Method::POST, "/v1/workflows".into(), json(def), false)
        }
        22 => {
            let bomb = "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\n\
                        c: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d]\n\
                        name: bomb\nsteps: [{id: a, tool: baton__echo, arguments: {v: *e}}]\n";
            (
                Method::POST,
                "/v1/workflows".into(),
                Body::Raw(bomb.into(), "application/json"),
                false,
            )
        }
        _ => {
            let id = [
                "%00",
                "..%2F..%2Fetc",
                "not-a-uuid",
                "00000000-0000-7000-8000-000000000000",
                "%F0%9F%A6%80",
            ]
            .choose(cx.rng)
            .expect("ids");
            let (method, path) = match cx.rng.random_range(0..4) {
                0 => (Method::GET, format!("/v1/tasks/{id}")),
                1 => (Method::DELETE, format!("/v1/tasks/{id}")),
                2 => (Method::POST, format!("/v1/tasks/{id}/retry")),
                _ => (Method::GET, format!("/v1/tasks/{id}/result?wait=abc")),
            };
            (method, path, Body::None, false)
        }
    };
    let op = cx
        .send(OpKind::Hostile, method, &path, body, &[], Expect::Nothing)
        .await;
    cx.remember(&op, retryable);
}
