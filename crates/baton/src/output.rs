//! What the client commands print, and `watch`.

use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::client::{Client, ClientError};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn percent(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |p| format!("{:.0}%", p * 100.0))
}

/// The most readable part of a tool result: its text, else the JSON.
pub fn result_text(result: &Value) -> String {
    let texts: Vec<&str> = result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == "text")
        .filter_map(|c| c["text"].as_str())
        .collect();
    if texts.is_empty() {
        serde_json::to_string_pretty(result).unwrap_or_default()
    } else {
        texts.join("\n")
    }
}

/// Prints a finished task's outcome; the exit code says how it ended.
pub fn print_result(view: &Value) -> ExitCode {
    match view["status"].as_str() {
        Some("completed") => {
            println!("{}", result_text(&view["result"]));
            ExitCode::SUCCESS
        }
        Some("failed") => {
            eprintln!(
                "task failed: {} [{}]",
                s(&view["error"]["message"]),
                s(&view["error"]["code"])
            );
            ExitCode::from(1)
        }
        Some("cancelled") => {
            eprintln!("task cancelled");
            ExitCode::from(1)
        }
        other => {
            eprintln!("task is {}", other.unwrap_or("in an unknown state"));
            ExitCode::from(1)
        }
    }
}

pub fn print_task(t: &Value) {
    let row = |k: &str, v: String| println!("{k:<13}{v}");
    row("task", s(&t["task_id"]).into());
    row("tool", s(&t["tool"]).into());
    row(
        "status",
        format!(
            "{} (attempt {} of {})",
            s(&t["status"]),
            t["attempt"],
            t["max_attempts"]
        ),
    );
    if !t["progress"].is_null() || !t["progress_message"].is_null() {
        row(
            "progress",
            format!(
                "{} {}",
                percent(&t["progress"]),
                t["progress_message"].as_str().unwrap_or("")
            ),
        );
    }
    row(
        "queue",
        format!("{} (priority {})", s(&t["queue"]), t["priority"]),
    );
    row("created", s(&t["created_at"]).into());
    if !t["started_at"].is_null() {
        row("started", s(&t["started_at"]).into());
    }
    if !t["completed_at"].is_null() {
        row("finished", s(&t["completed_at"]).into());
    }
    if !t["estimated_completion"].is_null() {
        row("estimated", s(&t["estimated_completion"]).into());
    }
    if t["cancel_requested"] == true && t["status"] != "cancelled" {
        row("cancel", "requested".into());
    }
    if !t["error"].is_null() {
        row(
            "error",
            format!("{} [{}]", s(&t["error"]["message"]), s(&t["error"]["code"])),
        );
    }
    if !t["result"].is_null() {
        row("result", result_text(&t["result"]));
    }
}

pub fn print_task_table(page: &Value) {
    println!(
        "{:<38} {:<15} {:<28} {:>8} {:>7}  CREATED",
        "TASK", "STATUS", "TOOL", "PROGRESS", "ATTEMPT"
    );
    for t in page["tasks"].as_array().into_iter().flatten() {
        println!(
            "{:<38} {:<15} {:<28} {:>8} {:>7}  {}",
            s(&t["task_id"]),
            s(&t["status"]),
            s(&t["tool"]),
            percent(&t["progress"]),
            format!("{}/{}", t["attempt"], t["max_attempts"]),
            s(&t["created_at"])
        );
    }
    if let Some(c) = page["next_cursor"].as_str() {
        eprintln!("more: --cursor {c}");
    }
}

pub fn print_servers(body: &Value) {
    println!(
        "{:<20} {:<6} {:<13} {:<11} {:>5} {:>9} {:>8} {:>10}  TAGS",
        "SERVER", "KIND", "STATE", "PROTOCOL", "TOOLS", "IN FLIGHT", "ERRORS", "LATENCY"
    );
    for srv in body["servers"].as_array().into_iter().flatten() {
        println!(
            "{:<20} {:<6} {:<13} {:<11} {:>5} {:>9} {:>7.0}% {:>8.1}ms  {}",
            s(&srv["name"]),
            s(&srv["transport"]),
            s(&srv["state"]),
            srv["protocol_version"].as_str().unwrap_or("-"),
            srv["tool_count"].to_string(),
            srv["in_flight"].to_string(),
            srv["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
            srv["latency_ms"].as_f64().unwrap_or(0.0),
            srv["config"]["tags"]
                .as_array()
                .map(|t| t
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(","))
                .unwrap_or_default()
        );
        if let Some(e) = srv["last_error"].as_str()
            && srv["state"] != "healthy"
        {
            println!("{:<20} last error: {e}", "");
        }
    }
    for g in body["groups"].as_array().into_iter().flatten() {
        let members: Vec<&str> = g["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str())
            .collect();
        println!("group {}: {}", s(&g["name"]), members.join(", "));
    }
}

pub fn print_queues(q: &Value) {
    println!(
        "{:<20} {:>7} {:>8} {:>8} {:>10} {:>7} {:>10} {:>8}",
        "QUEUE", "PAUSED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "DONE/MIN"
    );
    for q in q["queues"].as_array().into_iter().flatten() {
        let c = &q["counts"];
        println!(
            "{:<20} {:>7} {:>8} {:>8} {:>10} {:>7} {:>10} {:>8}",
            s(&q["name"]),
            if q["paused"] == true { "yes" } else { "no" },
            c["pending"].to_string(),
            c["running"].to_string(),
            c["completed"].to_string(),
            c["failed"].to_string(),
            c["cancelled"].to_string(),
            q["completed_last_minute"].to_string()
        );
    }
}

/// One parsed Server-Sent Event.
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// Splits an SSE byte stream into events.
#[derive(Default)]
struct SseParser {
    buf: String,
}

impl SseParser {
    fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let block: String = self.buf.drain(..end + 2).collect();
            let mut ev = SseEvent {
                id: None,
                event: None,
                data: String::new(),
            };
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("data:") {
                    if !ev.data.is_empty() {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                } else if let Some(v) = line.strip_prefix("id:") {
                    ev.id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("event:") {
                    ev.event = Some(v.trim().to_string());
                }
            }
            if !ev.data.is_empty() {
                out.push(ev);
            }
        }
        out
    }
}

/// The bar `watch` commands draw (0 to 1000); hidden when stderr is not a terminal.
pub fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{bar:40}] {percent:>3}% {prefix} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Follows a task's event stream, resuming with `Last-Event-ID` if the connection drops,
/// until the task ends. Shows a progress bar on a terminal and plain lines otherwise.
pub async fn watch(client: &Client, id: &str) -> Result<ExitCode, ClientError> {
    let task = client.task(id).await?;
    let bar = progress_bar();
    let plain = bar.is_hidden();
    bar.set_prefix(task["status"].as_str().unwrap_or("").to_string());
    let mut last_id: Option<String> = None;
    let mut logs_after = 0i64;
    let mut failures = 0u32;
    loop {
        let mut req = client
            .http()
            .get(client.url(&format!("/v1/tasks/{id}/events?logs_after={logs_after}")));
        if let Some(l) = &last_id {
            req = req.header("Last-Event-ID", l);
        }
        let resp = match req.send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or_default();
                bar.finish_and_clear();
                return Err(ClientError::Api {
                    status,
                    code: s(&body["error"]["code"]).into(),
                    message: s(&body["error"]["message"]).into(),
                });
            }
            Err(e) => {
                failures += 1;
                if failures > 30 {
                    bar.finish_and_clear();
                    return Err(ClientError::Connect {
                        url: client.url(""),
                        detail: e.to_string(),
                    });
                }
                bar.set_message(format!("reconnecting ({e})"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        failures = 0;
        let mut parser = SseParser::default();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            for ev in parser.push(&chunk) {
                if ev.id.is_some() {
                    last_id = ev.id.clone();
                }
                let Ok(data) = serde_json::from_str::<Value>(&ev.data) else {
                    continue;
                };
                // The tool's log lines, printed above the bar.
                if ev.event.as_deref() == Some("log") {
                    logs_after = data["seq"].as_i64().unwrap_or(logs_after);
                    if plain {
                        println!("{}", log_line(&data));
                    } else {
                        bar.println(log_line(&data));
                    }
                    continue;
                }
                let status = s(&data["status"]).to_string();
                if let Some(p) = data["progress"].as_f64() {
                    bar.set_position((p * 1000.0) as u64);
                }
                if let Some(m) = data["message"].as_str() {
                    bar.set_message(m.to_string());
                }
                bar.set_prefix(status.clone());
                if plain {
                    println!(
                        "{:<16} {:>5} {}",
                        s(&data["kind"]),
                        percent(&data["progress"]),
                        data["message"].as_str().unwrap_or("")
                    );
                }
                if matches!(status.as_str(), "completed" | "failed" | "cancelled") {
                    bar.finish_and_clear();
                    return Ok(print_result(&data));
                }
            }
        }
        // The stream ended without a final event (server restart, network): resume.
        bar.set_message("connection lost; resuming");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One log line for a terminal: time, level, logger, message (text as is, else JSON).
pub fn log_line(line: &Value) -> String {
    let data = match &line["data"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let logger = line["logger"]
        .as_str()
        .map(|l| format!(" [{l}]"))
        .unwrap_or_default();
    format!(
        "{} {:<9}{} {}",
        line["at"].as_str().unwrap_or("-"),
        line["level"].as_str().unwrap_or("info"),
        logger,
        data
    )
}

/// `baton servers search`: one line per registry server, how it runs.
pub fn print_registry_servers(servers: &[Value]) {
    for s in servers {
        let mut ways: Vec<String> = s["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["registryType"].as_str().map(str::to_string))
            .collect();
        ways.extend(
            s["remotes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["type"].as_str().map(|t| format!("remote {t}"))),
        );
        println!(
            "{}  {}  [{}]",
            s["name"].as_str().unwrap_or("?"),
            s["version"].as_str().unwrap_or("?"),
            ways.join(", ")
        );
        if let Some(d) = s["description"].as_str() {
            println!("    {d}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parser_handles_split_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"id: 3\nevent: progress\ndata: {\"a\"").is_empty());
        let evs = p.push(b":1}\n\n: keep-alive\n\nid: 4\ndata: x\n\n");
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].id.as_deref(), Some("3"));
        assert_eq!(evs[0].data, "{\"a\":1}");
        assert_eq!(evs[1].data, "x");
    }
}
