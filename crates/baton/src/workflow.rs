//! `baton workflow …`: run a definition file, follow, inspect and control workflows.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use crate::client::{Client, ClientError};

#[derive(Subcommand)]
pub enum WorkflowAction {
    /// Submit a workflow definition (YAML or JSON file; `-` reads stdin) and print its id.
    Run {
        file: PathBuf,
        /// Follow it until it ends (progress of the workflow and of its steps).
        #[arg(long)]
        watch: bool,
    },
    /// Show a workflow and its steps.
    Status {
        workflow_id: String,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Follow a workflow until it ends.
    Watch { workflow_id: String },
    /// Print the DAG with each step's state and the critical path.
    Dag {
        workflow_id: String,
        /// json, dot (Graphviz) or mermaid.
        #[arg(long, default_value = "mermaid")]
        format: String,
    },
    /// Cancel a running workflow (its running steps are cancelled, nothing more starts).
    Cancel { workflow_id: String },
    /// Run a failed or cancelled workflow again from its failed steps.
    Retry { workflow_id: String },
    /// List workflows, newest first.
    List {
        /// running, completed, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn path(id: &str) -> String {
    format!("/v1/workflows/{id}")
}

pub async fn run(client: &Client, action: WorkflowAction) -> Result<ExitCode, ClientError> {
    match action {
        WorkflowAction::Run {
            file,
            watch: follow,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            }
            .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let content_type = match file.extension().and_then(|e| e.to_str()) {
                Some("json") => "application/json",
                _ => "application/yaml",
            };
            let wf = client
                .post_text("/v1/workflows", text, content_type)
                .await?;
            let id = s(&wf["workflow_id"]).to_string();
            if follow {
                eprintln!("workflow {id} ({}) submitted", s(&wf["name"]));
                watch(client, &id).await
            } else {
                println!("{id}");
                Ok(ExitCode::SUCCESS)
            }
        }
        WorkflowAction::Status { workflow_id, json } => {
            let wf = client.get(&path(&workflow_id)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&wf).unwrap_or_default());
            } else {
                print_workflow(&wf);
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkflowAction::Watch { workflow_id } => watch(client, &workflow_id).await,
        WorkflowAction::Dag {
            workflow_id,
            format,
        } => {
            let text = client
                .get_text(&format!("{}/dag?format={format}", path(&workflow_id)))
                .await?;
            println!("{}", text.trim_end());
            Ok(ExitCode::SUCCESS)
        }
        WorkflowAction::Cancel { workflow_id } => {
            let wf = client.delete(&path(&workflow_id)).await?;
            println!("workflow {} {}", workflow_id, s(&wf["status"]));
            Ok(ExitCode::SUCCESS)
        }
        WorkflowAction::Retry { workflow_id } => {
            let wf = client
                .post(&format!("{}/retry", path(&workflow_id)))
                .await?;
            println!("workflow {} {} again", workflow_id, s(&wf["status"]));
            Ok(ExitCode::SUCCESS)
        }
        WorkflowAction::List { status, limit } => {
            let mut q = format!("/v1/workflows?limit={limit}");
            if let Some(st) = status {
                q.push_str(&format!("&status={st}"));
            }
            let page = client.get(&q).await?;
            println!(
                "{:<48} {:<24} {:<10} {:>9}",
                "WORKFLOW", "NAME", "STATUS", "STEPS"
            );
            for wf in page["workflows"].as_array().into_iter().flatten() {
                println!(
                    "{:<48} {:<24} {:<10} {:>4}/{:<4}",
                    s(&wf["workflow_id"]),
                    s(&wf["name"]),
                    s(&wf["status"]),
                    wf["progress"]["steps_finished"].as_u64().unwrap_or(0),
                    wf["progress"]["steps_total"].as_u64().unwrap_or(0),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_workflow(wf: &Value) {
    println!("workflow  {}", s(&wf["workflow_id"]));
    println!("name      {}", s(&wf["name"]));
    println!(
        "status    {} ({} of {} steps finished, {:.0}%)",
        s(&wf["status"]),
        wf["progress"]["steps_finished"].as_u64().unwrap_or(0),
        wf["progress"]["steps_total"].as_u64().unwrap_or(0),
        wf["progress"]["fraction"].as_f64().unwrap_or(0.0) * 100.0
    );
    if let Some(e) = wf["error"].as_object() {
        println!(
            "error     step `{}`: {}",
            e.get("step_id").and_then(Value::as_str).unwrap_or("-"),
            e.get("message").and_then(Value::as_str).unwrap_or("-")
        );
    }
    println!();
    println!(
        "{:<24} {:<10} {:>6} {:>9}  {:<28} NOTE",
        "STEP", "STATE", "PROG", "TIME", "TOOL"
    );
    for st in wf["steps"].as_array().into_iter().flatten() {
        // Why it failed or was skipped; while it runs, its latest progress message.
        let note = st["error"]["message"]
            .as_str()
            .or_else(|| {
                (st["state"] == "running")
                    .then(|| st["progress_message"].as_str())
                    .flatten()
            })
            .unwrap_or("");
        println!(
            "{:<24} {:<10} {:>6} {:>9}  {:<28} {}",
            s(&st["step_id"]),
            s(&st["state"]),
            st["progress"]
                .as_f64()
                .map_or("-".into(), |p| format!("{:.0}%", p * 100.0)),
            st["duration_ms"]
                .as_u64()
                .map_or("-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0)),
            s(&st["tool"]),
            note
        );
    }
}

/// Polls the workflow until it ends: a progress bar on a terminal, one line per step
/// state change otherwise. Exit code 0 only if it completed.
async fn watch(client: &Client, id: &str) -> Result<ExitCode, ClientError> {
    let bar = crate::output::progress_bar();
    let plain = bar.is_hidden();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut failures = 0u32;
    loop {
        let wf = match client.get(&path(id)).await {
            Ok(wf) => {
                failures = 0;
                wf
            }
            Err(ClientError::Connect { .. }) if failures < 30 => {
                failures += 1;
                bar.set_message("reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => {
                bar.finish_and_clear();
                return Err(e);
            }
        };
        let p = &wf["progress"];
        bar.set_position((p["fraction"].as_f64().unwrap_or(0.0) * 1000.0) as u64);
        bar.set_prefix(format!(
            "{} {}/{}",
            s(&wf["status"]),
            p["steps_finished"].as_u64().unwrap_or(0),
            p["steps_total"].as_u64().unwrap_or(0)
        ));
        let running: Vec<&str> = wf["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|st| st["state"] == "running")
            .filter_map(|st| st["step_id"].as_str())
            .collect();
        bar.set_message(if running.is_empty() {
            String::new()
        } else {
            format!("running: {}", running.join(", "))
        });
        for st in wf["steps"].as_array().into_iter().flatten() {
            let step = s(&st["step_id"]).to_string();
            let state = s(&st["state"]).to_string();
            if seen.get(&step) != Some(&state) {
                if plain && state != "pending" {
                    println!("{:<24} {}", step, state);
                }
                seen.insert(step, state);
            }
        }
        let status = s(&wf["status"]);
        if status != "running" {
            bar.finish_and_clear();
            print_workflow(&wf);
            return Ok(if status == "completed" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
