//! What the clients submit: random tasks over the built-in and test-server tools, and
//! small workflows.

use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

use super::client::Client;
use super::cluster::SERVER;
use super::hostile;

impl Client<'_> {
    /// Text for arguments and messages: mostly plain, sometimes hostile.
    pub fn text(&mut self) -> String {
        if self.rng.random_bool(0.15) {
            hostile::odd_text(self.rng)
        } else {
            format!("c{}-{}", self.c, self.n)
        }
    }

    /// A random task to submit, and whether it is likely to end failed (worth a retry).
    pub fn task_body(&mut self) -> (Value, bool) {
        let text = self.text();
        let r = &mut *self.rng;
        let (tool, args, mut extra, failing) = match r.random_range(0..100) {
            0..18 => (
                "baton__echo".to_string(),
                json!({"n": self.n, "s": text}),
                json!({}),
                false,
            ),
            18..36 => (
                "baton__sleep".into(),
                json!({"ms": r.random_range(20..1200), "steps": r.random_range(1..6)}),
                json!({}),
                false,
            ),
            36..48 => (
                "baton__fail".into(),
                json!({"message": format!("fail {} {text}", self.n), "retryable": r.random_bool(0.5)}),
                json!({"max_attempts": r.random_range(1..4)}),
                true,
            ),
            48..70 => (
                format!("{SERVER}__effect"),
                json!({"ms": r.random_range(0..900), "steps": r.random_range(1..5)}),
                json!({}),
                false,
            ),
            70..80 => (
                format!("{SERVER}__slow"),
                json!({"duration_ms": r.random_range(50..1000), "steps": r.random_range(1..5)}),
                json!({}),
                false,
            ),
            80..86 => (
                format!("{SERVER}__hang"),
                json!({"id": format!("h{}-{}", self.c, self.n)}),
                json!({"timeout_ms": r.random_range(300..2000), "max_attempts": 1}),
                true,
            ),
            86..92 => (
                format!("{SERVER}__stubborn"),
                json!({"ms": r.random_range(100..1000)}),
                json!({}),
                false,
            ),
            92..95 => (
                format!("{SERVER}__crash"),
                json!({}),
                json!({"max_attempts": 1}),
                true,
            ),
            _ => (
                format!("{SERVER}__fail_tool"),
                json!({"message": format!("tool error {}", self.n)}),
                json!({"max_attempts": 1}),
                true,
            ),
        };
        if r.random_bool(0.2) {
            extra["priority"] = [json!("low"), json!("high"), json!(r.random_range(0..=100))]
                .choose(r)
                .expect("choices")
                .clone();
        }
        if r.random_bool(0.2) {
            extra["queue"] = json!(["q1", "q2"].choose(r).expect("choices"));
        }
        if r.random_bool(0.1) {
            extra["delay_ms"] = json!(r.random_range(100..1500));
        }
        if r.random_bool(0.1) {
            extra["metadata"] = json!({"client": self.c, "n": self.n});
        }
        extra["tool"] = json!(tool);
        extra["arguments"] = args;
        (extra, failing)
    }

    /// A small workflow: a chain, a diamond with references to earlier results, one
    /// with a failing step (`fail_fast` or `continue`), or a fan-out/fan-in.
    pub fn definition(&mut self) -> Value {
        let n = self.n;
        let r = &mut *self.rng;
        let effect =
            |ms: u64| json!({"tool": format!("{SERVER}__effect"), "arguments": {"ms": ms}});
        let mut steps: Vec<Value> = Vec::new();
        let mut step = |id: &str, mut s: Value, deps: &[&str]| {
            s["id"] = json!(id);
            if !deps.is_empty() {
                s["depends_on"] = json!(deps);
            }
            steps.push(s);
        };
        let shape = r.random_range(0..4);
        match shape {
            0 => {
                step(
                    "a",
                    json!({"tool": "baton__echo", "arguments": {"v": format!("w{n}")}}),
                    &[],
                );
                step("b", effect(r.random_range(0..400)), &["a"]);
                step(
                    "c",
                    json!({"tool": "baton__echo", "arguments": {"from_a": "${steps.a.result.structuredContent.v}"}}),
                    &["b"],
                );
            }
            1 => {
                step(
                    "a",
                    json!({"tool": "baton__echo", "arguments": {"v": n}}),
                    &[],
                );
                step(
                    "b",
                    json!({"tool": "baton__sleep", "arguments": {"ms": r.random_range(50..500)}}),
                    &["a"],
                );
                step("c", effect(r.random_range(0..400)), &["a"]);
                step(
                    "d",
                    json!({"tool": "baton__echo", "arguments": {
                    "slept": "${steps.b.result.structuredContent.slept_ms}",
                    "c": "${steps.c.result.content[0].text}"}}),
                    &["b", "c"],
                );
            }
            2 => {
                step(
                    "a",
                    json!({"tool": "baton__echo", "arguments": {"v": n}}),
                    &[],
                );
                step(
                    "b",
                    json!({"tool": "baton__fail", "arguments": {"message": format!("step fails {n}")}, "retry": {"max_attempts": 1}}),
                    &["a"],
                );
                step("c", json!({"tool": "baton__echo", "arguments": {}}), &["b"]);
                step("d", effect(r.random_range(0..300)), &[]);
            }
            _ => {
                step(
                    "root",
                    json!({"tool": "baton__echo", "arguments": {"v": n}}),
                    &[],
                );
                let width = r.random_range(2..5);
                let mut mids = Vec::new();
                for i in 0..width {
                    let id = format!("m{i}");
                    let s = if i % 2 == 0 {
                        effect(r.random_range(0..300))
                    } else {
                        json!({"tool": "baton__sleep", "arguments": {"ms": r.random_range(20..300)}})
                    };
                    step(&id, s, &["root"]);
                    mids.push(id);
                }
                let deps: Vec<&str> = mids.iter().map(String::as_str).collect();
                step(
                    "join",
                    json!({"tool": "baton__echo", "arguments": {"n": n}}),
                    &deps,
                );
            }
        }
        let on_failure = if r.random_bool(0.5) {
            "fail_fast"
        } else {
            "continue"
        };
        json!({"name": format!("chaos-{shape}-{n}"), "on_failure": on_failure, "steps": steps})
    }
}
