//! How well and how fast `tool_search` finds a tool: the index behind the MCP tool and
//! `GET /v1/tools?q=`, over a catalog of real-looking tools (`tool_search.json`: 60
//! tools as MCP servers describe them, and 44 questions each answered by one of them)
//! padded with generated tools of other domains that share their verbs ("create a
//! shipment in the fleet system") up to `--tools`.
//!
//! Reports precision at 1 (the expected tool ranked first), hits in the top 3 and 5,
//! the mean reciprocal rank, and the latency of one search (p50/p99 over `--rounds`
//! passes of the questions) and of building the index.

use std::sync::Arc;
use std::time::Instant;

use baton_engine::tools::search::ToolIndex;
use baton_engine::tools::{CatalogEntry, ToolInfo};
use serde_json::{Map, Value, json};

use super::Report;

const CORPUS: &str = include_str!("tool_search.json");

fn entry(server: &str, name: &str, description: &str, params: &Map<String, Value>) -> CatalogEntry {
    let properties: Map<String, Value> = params
        .iter()
        .map(|(k, d)| (k.clone(), json!({"type": "string", "description": d})))
        .collect();
    CatalogEntry {
        qualified_name: format!("{server}__{name}"),
        server: server.to_string(),
        info: ToolInfo {
            name: name.to_string(),
            description: Some(description.to_string()),
            input_schema: Arc::new(json!({"type": "object", "properties": properties})),
            definition: Arc::new(json!({"name": name})),
        },
    }
}

/// The corpus's tools, then generated ones until there are `total`.
fn catalog(corpus: &Value, total: usize) -> Vec<CatalogEntry> {
    let mut out: Vec<CatalogEntry> = corpus["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            entry(
                t["server"].as_str().unwrap_or_default(),
                t["name"].as_str().unwrap_or_default(),
                t["description"].as_str().unwrap_or_default(),
                t["params"].as_object().unwrap_or(&Map::new()),
            )
        })
        .collect();
    let words = |k: &str| -> Vec<&str> {
        corpus["distractors"][k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    };
    let (verbs, nouns, servers) = (words("verbs"), words("nouns"), words("servers"));
    let mut i = 0usize;
    while out.len() < total && !verbs.is_empty() && !nouns.is_empty() && !servers.is_empty() {
        let verb = verbs[i % verbs.len()];
        let noun = nouns[(i / verbs.len()) % nouns.len()];
        let server = servers[(i / (verbs.len() * nouns.len())) % servers.len()];
        let replica = i / (verbs.len() * nouns.len() * servers.len());
        let server = if replica == 0 {
            server.to_string()
        } else {
            format!("{server}-{replica}")
        };
        let snake = noun.replace(' ', "_");
        let mut params = Map::new();
        params.insert(format!("{snake}_id"), json!(format!("The {noun}")));
        params.insert("note".into(), json!("Free text kept with the change"));
        out.push(entry(
            &server,
            &format!("{verb}_{snake}"),
            &format!("{} a {noun} in the {server} system.", capitalise(verb)),
            &params,
        ));
        i += 1;
    }
    out
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

pub(super) fn run(tools: usize, rounds: usize) -> anyhow::Result<Report> {
    let corpus: Value = serde_json::from_str(CORPUS)?;
    let entries = catalog(&corpus, tools);
    let n = entries.len();
    let started = Instant::now();
    let index = ToolIndex::build(entries);
    let build_ms = started.elapsed().as_secs_f64() * 1e3;

    let queries: Vec<(&str, &str)> = corpus["queries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| Some((q["q"].as_str()?, q["expect"].as_str()?)))
        .collect();
    let (mut at1, mut at3, mut at5, mut rr) = (0usize, 0usize, 0usize, 0f64);
    let mut misses = Vec::new();
    for (q, expect) in &queries {
        let found = index.search(q, 10);
        let rank = found
            .iter()
            .position(|m| m.entry.qualified_name == *expect)
            .map(|p| p + 1);
        if let Some(r) = rank {
            at1 += usize::from(r == 1);
            at3 += usize::from(r <= 3);
            at5 += usize::from(r <= 5);
            rr += 1.0 / r as f64;
        }
        if rank != Some(1) {
            misses.push(json!({
                "query": q,
                "expected": expect,
                "rank": rank,
                "first": found.first().map(|m| m.entry.qualified_name.clone()),
            }));
        }
    }
    let total = queries.len().max(1) as f64;

    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    for _ in 0..rounds {
        for (q, _) in &queries {
            let t = Instant::now();
            let found = index.search(q, 10);
            hist.record(t.elapsed().as_nanos() as u64)?;
            std::hint::black_box(found);
        }
    }
    let us = |p: f64| hist.value_at_quantile(p) as f64 / 1e3;
    // The questions the ranking did not answer first, to read beside the figures.
    for m in &misses {
        eprintln!(
            "not first: {:?} expected {} (rank {}), got {}",
            m["query"].as_str().unwrap_or_default(),
            m["expected"].as_str().unwrap_or_default(),
            m["rank"]
                .as_u64()
                .map_or("none in top 10".to_string(), |r| r.to_string()),
            m["first"].as_str().unwrap_or("nothing")
        );
    }
    Ok(Report {
        scenario: "tool_search: BM25 ranking of the tool catalog (the index alone, no node)",
        figures: vec![
            ("tools in the catalog", n as f64, "tools"),
            ("questions", queries.len() as f64, ""),
            ("precision at 1", 100.0 * at1 as f64 / total, "%"),
            ("expected tool in top 3", 100.0 * at3 as f64 / total, "%"),
            ("expected tool in top 5", 100.0 * at5 as f64 / total, "%"),
            ("mean reciprocal rank", rr / total, ""),
            ("search p50", us(0.5), "µs"),
            ("search p99", us(0.99), "µs"),
            ("search max", hist.max() as f64 / 1e3, "µs"),
            ("index build", build_ms, "ms"),
        ],
    })
}
