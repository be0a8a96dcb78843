//! How large documents are stored: for real-ish tool results (JSON rows, prose, a base64
//! image), the bytes the store keeps against the plain JSON, and the CPU time of storing
//! and reading one back (the store's own encoder, no database: the figures are the
//! compression's alone).

use std::time::Instant;

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;

/// A deterministic pseudo-random stream (xorshift64), so every run measures the same
/// documents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// A query tool's answer: `n` customer rows as structured content.
fn json_rows(rng: &mut Rng, n: usize) -> Value {
    let plans = ["free", "pro", "team", "enterprise"];
    let cities = [
        "Lisbon", "Osaka", "Denver", "Nairobi", "Lyon", "Perth", "Quito",
    ];
    let rows: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "id": 100_000 + i,
                "email": format!("user{}@example.com", rng.next() % 1_000_000),
                "plan": rng.pick(&plans),
                "city": rng.pick(&cities),
                "mrr_usd": (rng.next() % 50_000) as f64 / 100.0,
                "active": !rng.next().is_multiple_of(5),
                "signed_up": format!("2026-{:02}-{:02}T10:00:00Z", 1 + rng.next() % 12, 1 + rng.next() % 28),
            })
        })
        .collect();
    json!({"content": [{"type": "text", "text": format!("{n} rows")}],
           "structuredContent": {"rows": rows}})
}

/// A summarising tool's answer: `words` words of prose.
fn prose(rng: &mut Rng, words: usize) -> Value {
    let vocabulary = [
        "the",
        "model",
        "customer",
        "revenue",
        "grew",
        "in",
        "quarter",
        "while",
        "churn",
        "fell",
        "and",
        "our",
        "team",
        "shipped",
        "a",
        "new",
        "pricing",
        "page",
        "that",
        "improved",
        "conversion",
        "across",
        "regions",
        "with",
        "latency",
        "under",
        "load",
        "remained",
        "stable",
        "because",
        "caching",
        "reduced",
        "calls",
        "to",
        "upstream",
        "services",
        "significantly",
        "during",
        "peak",
        "hours",
    ];
    let mut text = String::new();
    for i in 0..words {
        if i > 0 {
            text.push_str(if i.is_multiple_of(17) { ". " } else { " " });
        }
        text.push_str(rng.pick(&vocabulary));
    }
    json!({"content": [{"type": "text", "text": text}]})
}

/// An image tool's answer: `bytes` of already-compressed image data, base64.
fn image(rng: &mut Rng, bytes: usize) -> Value {
    let data: Vec<u8> = (0..bytes).map(|_| rng.next() as u8).collect();
    json!({"content": [{"type": "image", "mimeType": "image/png",
                        "data": base64::engine::general_purpose::STANDARD.encode(data)}]})
}

pub(crate) fn payloads(rounds: usize) -> anyhow::Result<Report> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let docs = [
        ("JSON rows (2,000)", json_rows(&mut rng, 2000)),
        ("prose (50,000 words)", prose(&mut rng, 50_000)),
        ("base64 image (256 KiB)", image(&mut rng, 256 * 1024)),
        ("JSON rows (20)", json_rows(&mut rng, 20)),
    ];
    let mut figures = Vec::new();
    for (name, doc) in &docs {
        let plain = doc.to_string().len();
        let rounds = rounds.max(1);
        let t = Instant::now();
        let mut stored = baton_store::payload::result(doc);
        for _ in 1..rounds {
            stored = baton_store::payload::result(doc);
        }
        let encode = t.elapsed().as_secs_f64() / rounds as f64;
        let kept = stored.json.len() + stored.zstd.as_ref().map_or(0, Vec::len);
        let stub: Option<Value> = serde_json::from_str(&stored.json).ok();
        let t = Instant::now();
        for _ in 0..rounds {
            let back = baton_store::payload::decode(stub.clone(), stored.zstd.clone())?;
            anyhow::ensure!(back.as_ref() == Some(doc), "{name} did not read back whole");
        }
        let decode = t.elapsed().as_secs_f64() / rounds as f64;
        // Without compression the store would still serialise and parse the JSON.
        let t = Instant::now();
        let mut text = String::new();
        for _ in 0..rounds {
            text = doc.to_string();
        }
        let serialise = t.elapsed().as_secs_f64() / rounds as f64;
        let t = Instant::now();
        for _ in 0..rounds {
            let _: Value = serde_json::from_str(&text)?;
        }
        let parse = t.elapsed().as_secs_f64() / rounds as f64;
        let mb = plain as f64 / 1e6;
        figures.push((*name, plain as f64 / 1024.0, "KiB as JSON"));
        figures.push(("  stored", kept as f64 / 1024.0, "KiB"));
        figures.push(("  saved", 100.0 * (1.0 - kept as f64 / plain as f64), "%"));
        figures.push(("  store: serialise+compress", encode * 1e3 / mb, "ms/MB"));
        figures.push(("  store: serialise alone", serialise * 1e3 / mb, "ms/MB"));
        figures.push(("  read: decompress+parse", decode * 1e3 / mb, "ms/MB"));
        figures.push(("  read: parse alone", parse * 1e3 / mb, "ms/MB"));
    }
    Ok(Report {
        scenario: "payloads: bytes stored for large results (zstd above 4 KiB) and the CPU it costs",
        figures,
    })
}
