//! `baton keys` and `baton audit`: API keys and the audit log, through a running node
//! (`--server`, `--token`) or offline on a data directory or store (`--data-dir`,
//! `--store`, `--config`), which is how the first admin key is made before any node
//! runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use baton_core::Timestamp;
use baton_core::auth::{Rate, parse_scopes};
use baton_engine::keys::{CreatedKey, KeyView, NewKey};
use baton_server::config::{Config, Overrides, StoreOverrides};
use baton_store::{AuditQuery, Store};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Client, ClientError};

/// Where the keys are: the store itself (offline) when any of these is given, else the
/// running node.
#[derive(Args, Clone, Default)]
pub struct Offline {
    /// Work on this data directory's embedded store, without a running node.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Work on this PostgreSQL store, without a running node.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Work on the store this configuration file names, without a running node.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl Offline {
    fn given(&self) -> bool {
        self.data_dir.is_some() || self.store.is_some() || self.config.is_some()
    }

    async fn open(&self) -> Result<std::sync::Arc<dyn Store>, ClientError> {
        let overrides = Overrides {
            data_dir: self.data_dir.clone(),
            store: self
                .store
                .clone()
                .map(|url| StoreOverrides { url: Some(url) }),
            ..Default::default()
        };
        let config = Config::load(self.config.as_deref(), &overrides)
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        if !config.store.is_postgres() {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                ClientError::Usage(format!(
                    "cannot use data directory {}: {e}",
                    config.data_dir.display()
                ))
            })?;
        }
        baton_server::app::open_store(&config)
            .await
            .map_err(|e| ClientError::Usage(format!("cannot open the store: {e}")))
    }
}

#[derive(Subcommand)]
pub enum KeysAction {
    /// Make a key. Its secret is printed once, alone on the last line of stdout; only a
    /// hash of it is kept.
    Create(CreateArgs),
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        offline: Offline,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: every node refuses it within about a second.
    Revoke {
        key_id: String,
        #[command(flatten)]
        offline: Offline,
    },
    /// Give a key a new secret (printed alone on the last line); the old one keeps
    /// working for the grace period.
    Rotate {
        key_id: String,
        /// How long the old secret keeps working (e.g. 1h; 0s ends it at once).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        grace: Duration,
        #[command(flatten)]
        offline: Offline,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// What the key is for.
    #[arg(long)]
    name: String,
    /// The principal (tenant) it acts as [default: the caller's, or `anonymous` offline].
    #[arg(long)]
    principal: Option<String>,
    /// Comma-separated: tasks:read, tasks:write, workflows:read, workflows:write,
    /// queues:admin, servers:admin, keys:admin, audit:read, metrics:read, admin.
    #[arg(long)]
    scopes: String,
    /// How long it works, e.g. 90d [default: until revoked].
    #[arg(long, value_parser = humantime::parse_duration)]
    expires: Option<Duration>,
    /// E.g. 50/s, 600/m.
    #[arg(long)]
    rate_limit: Option<String>,
    /// Most active tasks its principal may have through it.
    #[arg(long)]
    max_active: Option<u64>,
    #[command(flatten)]
    offline: Offline,
}

fn usage(m: impl Into<String>) -> ClientError {
    ClientError::Usage(m.into())
}

fn engine_error(e: baton_engine::EngineError) -> ClientError {
    usage(e.to_string())
}

pub async fn run(client: &Client, action: KeysAction) -> Result<ExitCode, ClientError> {
    match action {
        KeysAction::Create(a) => create(client, a).await,
        KeysAction::List { offline, json } => {
            let keys: Vec<KeyView> = if offline.given() {
                let store = offline.open().await?;
                let keys = baton_engine::keys::list_in(store.as_ref(), Timestamp::now())
                    .await
                    .map_err(engine_error)?;
                store.close().await;
                keys
            } else {
                let v = client.get("/v1/keys").await?;
                serde_json::from_value(v["keys"].clone()).unwrap_or_default()
            };
            print_keys(&keys, json);
            Ok(ExitCode::SUCCESS)
        }
        KeysAction::Revoke { key_id, offline } => {
            if offline.given() {
                let store = offline.open().await?;
                let r =
                    baton_engine::keys::revoke_in(store.as_ref(), &key_id, Timestamp::now()).await;
                store.close().await;
                r.map_err(engine_error)?;
            } else {
                client.delete(&format!("/v1/keys/{key_id}")).await?;
            }
            println!("key {key_id} revoked");
            Ok(ExitCode::SUCCESS)
        }
        KeysAction::Rotate {
            key_id,
            grace,
            offline,
        } => {
            let created = if offline.given() {
                let store = offline.open().await?;
                let r =
                    baton_engine::keys::rotate_in(store.as_ref(), &key_id, grace, Timestamp::now())
                        .await;
                store.close().await;
                r.map_err(engine_error)?.0
            } else {
                let body = json!({"grace": humantime::format_duration(grace).to_string()});
                let v = client
                    .post_json(&format!("/v1/keys/{key_id}/rotate"), &body)
                    .await?;
                created_from(v)?
            };
            eprintln!(
                "key {} has a new secret; the old one works until {}",
                created.key.key_id,
                created
                    .key
                    .previous_secret_until
                    .map_or_else(|| "now".to_string(), Timestamp::to_rfc3339)
            );
            println!("{}", created.secret);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn created_from(v: Value) -> Result<CreatedKey, ClientError> {
    let key: KeyView = serde_json::from_value(v.clone())
        .map_err(|e| ClientError::Protocol(format!("a key without its fields: {e}")))?;
    let secret = v["secret"]
        .as_str()
        .ok_or_else(|| ClientError::Protocol("no secret in the answer".into()))?
        .to_string();
    Ok(CreatedKey { key, secret })
}

async fn create(client: &Client, a: CreateArgs) -> Result<ExitCode, ClientError> {
    let scopes = parse_scopes(&a.scopes).map_err(usage)?;
    let rate_limit = a
        .rate_limit
        .as_deref()
        .map(str::parse::<Rate>)
        .transpose()
        .map_err(usage)?;
    let created = if a.offline.given() {
        let store = a.offline.open().await?;
        let new = NewKey {
            name: a.name,
            principal: a
                .principal
                .unwrap_or_else(|| baton_core::principal::ANONYMOUS.into()),
            scopes,
            expires_in: a.expires,
            rate_limit,
            max_active: a.max_active,
        };
        let r = baton_engine::keys::create_in(store.as_ref(), new, Timestamp::now()).await;
        store.close().await;
        r.map_err(engine_error)?.0
    } else {
        let mut body = json!({
            "name": a.name,
            "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        });
        if let Some(p) = a.principal {
            body["principal"] = json!(p);
        }
        if let Some(d) = a.expires {
            body["expires_in"] = json!(humantime::format_duration(d).to_string());
        }
        if let Some(r) = rate_limit {
            body["rate_limit"] = json!(r.to_string());
        }
        if let Some(m) = a.max_active {
            body["max_active"] = json!(m);
        }
        created_from(client.post_json("/v1/keys", &body).await?)?
    };
    let k = &created.key;
    eprintln!(
        "made key {} `{}` for principal {} with {}{}; its secret follows and is not shown again",
        k.key_id,
        k.name,
        k.principal,
        k.scopes.join(","),
        k.expires_at
            .map(|e| format!(", expiring {}", e.to_rfc3339()))
            .unwrap_or_default()
    );
    println!("{}", created.secret);
    Ok(ExitCode::SUCCESS)
}

fn print_keys(keys: &[KeyView], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "keys": keys })).unwrap_or_default()
        );
        return;
    }
    if keys.is_empty() {
        println!("no keys");
        return;
    }
    println!(
        "{:<17} {:<8} {:<16} {:<20} SCOPES",
        "KEY", "STATE", "PRINCIPAL", "NAME"
    );
    for k in keys {
        println!(
            "{:<17} {:<8} {:<16} {:<20} {}",
            k.key_id,
            k.state,
            k.principal,
            k.name,
            k.scopes.join(",")
        );
    }
}

/// `baton audit`.
#[derive(Args)]
pub struct AuditArgs {
    #[arg(long)]
    principal: Option<String>,
    /// E.g. tasks.submit, keys.revoke, mcp.tools/call.
    #[arg(long)]
    action: Option<String>,
    /// A task id, key id, server or queue name.
    #[arg(long)]
    target: Option<String>,
    /// Entries at or after this time (RFC 3339), or this long ago (e.g. 1h).
    #[arg(long)]
    since: Option<String>,
    /// Entries before this time (RFC 3339), or this long ago.
    #[arg(long)]
    until: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Continue after a previous page (its next_cursor).
    #[arg(long)]
    cursor: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    offline: Offline,
}

/// An RFC 3339 time, or a duration meaning that long ago.
fn when(text: &str) -> Result<Timestamp, ClientError> {
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        return Ok(t);
    }
    humantime::parse_duration(text)
        .map(|d| Timestamp::now().saturating_sub(d))
        .map_err(|_| {
            usage(format!(
                "`{text}` is neither an RFC 3339 time nor a duration like 1h"
            ))
        })
}

pub async fn audit(client: &Client, a: AuditArgs) -> Result<ExitCode, ClientError> {
    let since = a.since.as_deref().map(when).transpose()?;
    let until = a.until.as_deref().map(when).transpose()?;
    let page: Value = if a.offline.given() {
        let page = baton_engine::page::Page::parse(Some(a.limit), a.cursor.as_deref())
            .map_err(|e| usage(e.message))?;
        let store = a.offline.open().await?;
        let query = AuditQuery {
            principal: a.principal,
            action: a.action,
            target: a.target,
            since,
            until,
            before_seq: page.before_seq,
            limit: page.limit,
        };
        let entries = store.list_audit(&query).await;
        store.close().await;
        let entries = entries.map_err(|e| usage(e.to_string()))?;
        let next_cursor = page.next(&entries, |e| e.seq);
        json!({"entries": entries, "next_cursor": next_cursor})
    } else {
        let mut q: Vec<(&str, String)> = vec![("limit", a.limit.to_string())];
        for (k, v) in [
            ("principal", a.principal),
            ("action", a.action),
            ("target", a.target),
            ("cursor", a.cursor),
            ("since", since.map(Timestamp::to_rfc3339)),
            ("until", until.map(Timestamp::to_rfc3339)),
        ] {
            if let Some(v) = v {
                q.push((k, v));
            }
        }
        client.get_query("/v1/audit", &q).await?
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&page).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let entries = page["entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        println!("no audit entries");
    }
    for e in &entries {
        let at = e["at"]
            .as_i64()
            .map(|ms| Timestamp::from_millis(ms).to_rfc3339())
            .or_else(|| e["at"].as_str().map(String::from))
            .unwrap_or_default();
        println!(
            "{at}  {:<16} {:<24} {:<16} {:<15} {}{}",
            e["principal"].as_str().unwrap_or("-"),
            e["action"].as_str().unwrap_or("-"),
            e["outcome"].as_str().unwrap_or("-"),
            e["credential"].as_str().unwrap_or("-"),
            e["target"].as_str().unwrap_or(""),
            e["status"]
                .as_u64()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
        );
    }
    if let Some(c) = page["next_cursor"].as_str() {
        eprintln!("more: --cursor {c}");
    }
    Ok(ExitCode::SUCCESS)
}
