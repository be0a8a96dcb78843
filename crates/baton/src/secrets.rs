//! `baton secrets`: the key that encrypts the env and header values of servers registered
//! at runtime. `new-key` makes one; `rotate` re-encrypts every stored server's values with
//! a new one, offline (like `migrate`, it opens the store itself).

use std::path::PathBuf;
use std::process::ExitCode;

use baton_server::Config;
use baton_server::config::{Overrides, StoreOverrides};
use baton_upstream::secrets::{self, KEY_ENV, NEW_KEY_ENV, Rotation, SecretKey};
use baton_upstream::{Secrets, SecretsConfig, StoreScope};
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    action: SecretsAction,
}

#[derive(Subcommand)]
enum SecretsAction {
    /// Print a fresh key (base64 of 32 random bytes) for BATON_SECRET_KEY or a key file.
    NewKey {
        /// Write the key to this new file (readable by its owner only) instead of printing
        /// it; refuses to overwrite.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Re-encrypt the secrets of every stored server with a new key, in one pass. Stop the
    /// nodes first; values already under the new key are skipped, so an interrupted run
    /// can be run again. Then give the new key to every node.
    Rotate(RotateArgs),
}

#[derive(Args)]
struct RotateArgs {
    /// The store: postgres://… for a shared one (default: the SQLite store in the data
    /// directory).
    #[arg(long, env = "BATON_STORE", value_name = "URL")]
    store: Option<String>,
    /// The data directory of the SQLite store (default ./baton-data).
    #[arg(long, env = "BATON_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (for `[store]` and `[secrets] key_file`).
    #[arg(long, env = "BATON_CONFIG")]
    config: Option<PathBuf>,
    /// A file holding the new key (`baton secrets new-key --out PATH` makes one).
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "new_key",
        required_unless_present = "new_key"
    )]
    new_key_file: Option<PathBuf>,
    /// The new key, base64 of 32 bytes. Prefer the environment variable: a flag's value
    /// is visible to other users of the machine.
    #[arg(long, env = NEW_KEY_ENV, hide_env_values = true, value_name = "KEY")]
    new_key: Option<String>,
    /// Count what would be re-encrypted; write nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(args: SecretsArgs) -> ExitCode {
    init_logging();
    match args.action {
        SecretsAction::NewKey { out } => new_key(out),
        SecretsAction::Rotate(args) => rotate(args).await,
    }
}

/// Warnings only (a key file readable by others, …), unless `BATON_LOG` says otherwise.
fn init_logging() {
    let filter = std::env::var("BATON_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn new_key(out: Option<PathBuf>) -> ExitCode {
    let (key, text) = SecretKey::generate();
    match out {
        None => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match secrets::write_key_file(&path, &text) {
            Ok(()) => {
                println!("wrote key {} to {}", key.id(), path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
    }
}

/// `[secrets]` of the node configuration (its `key_file` opens the current values).
fn secrets_config(config: &Config) -> SecretsConfig {
    config.secrets.clone()
}

async fn rotate(args: RotateArgs) -> ExitCode {
    let overrides = Overrides {
        data_dir: args.data_dir.clone(),
        store: args
            .store
            .clone()
            .map(|url| StoreOverrides { url: Some(url) }),
        ..Overrides::default()
    };
    let config = match Config::load(args.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let new = match (&args.new_key_file, &args.new_key) {
        (Some(path), _) => secrets::read_key(path).map_err(|e| e.to_string()),
        (None, Some(text)) => SecretKey::parse(text).map_err(|_| {
            format!("--new-key ({NEW_KEY_ENV}) is not a valid key: expected the base64 of 32 bytes")
        }),
        (None, None) => Err(format!("give --new-key-file PATH or {NEW_KEY_ENV}")),
    };
    let new = match new {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let shared = config.store.is_postgres();
    // On SQLite, the data directory's lock proves no node is running on it.
    let _lock = if shared {
        None
    } else {
        match lock_data_dir(&config) {
            Ok(lock) => Some(lock),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let scope = if shared {
        StoreScope::Shared
    } else {
        StoreScope::Local {
            data_dir: config.data_dir.clone(),
        }
    };
    let current = match Secrets::load(&secrets_config(&config), scope) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let store = match baton_server::app::open_store(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open the store: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = current.rotate(&*store, &new, !args.dry_run).await;
    store.close().await;
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    print_report(&report, &new, &current, args.dry_run);
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_report(report: &Rotation, new: &SecretKey, current: &Secrets, dry_run: bool) {
    let verb = if dry_run {
        "would re-encrypt"
    } else {
        "re-encrypted"
    };
    println!(
        "{verb} {} value(s) of {} server(s) with key {}{}",
        report.resealed + report.plain,
        report.servers,
        new.id(),
        if report.plain > 0 {
            format!(
                " ({} of them stored unencrypted by an older Baton)",
                report.plain
            )
        } else {
            String::new()
        }
    );
    if report.current > 0 {
        println!(
            "{} value(s) were already under key {}",
            report.current,
            new.id()
        );
    }
    for failure in &report.failures {
        eprintln!("error: left unchanged: {failure}");
    }
    if !report.failures.is_empty() {
        let known = current.key_ids();
        eprintln!(
            "give this command every key that encrypted them ({KEY_ENV}, [secrets] key_file, <data dir>/{}); keys it has: {}",
            secrets::KEY_FILE,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return;
    }
    if !dry_run {
        println!(
            "now set {KEY_ENV} (or [secrets] key_file) to the new key {} on every node sharing this store, then start them",
            new.id()
        );
    }
}

/// The lock a node holds on its data directory: refuses to rotate under a running node.
fn lock_data_dir(config: &Config) -> Result<std::fs::File, String> {
    let dir = &config.data_dir;
    if !dir.is_dir() {
        return Err(format!(
            "no data directory at {}: nothing to rotate (give --data-dir or --store)",
            dir.display()
        ));
    }
    let path = dir.join("baton.lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "data directory {} is in use by a running Baton process; stop it first",
            dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use baton_store::Store;
    use baton_store::sqlite::{SqliteOptions, SqliteStore};
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        secrets: SecretsArgs,
    }

    fn args(a: &[&str]) -> SecretsArgs {
        Cli::try_parse_from(std::iter::once("secrets").chain(a.iter().copied()))
            .unwrap()
            .secrets
    }

    async fn store(dir: &std::path::Path) -> Arc<dyn Store> {
        Arc::new(
            SqliteStore::open(&SqliteOptions::new(dir.join("baton.db")))
                .await
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn new_key_then_rotate_a_sqlite_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let key_file = dir.path().join("new.key");
        let key_path = key_file.to_str().unwrap();
        assert_eq!(
            run(args(&["new-key", "--out", key_path])).await,
            ExitCode::SUCCESS
        );
        assert_ne!(
            run(args(&["new-key", "--out", key_path])).await,
            ExitCode::SUCCESS,
            "never overwrites a key"
        );
        let new = secrets::read_key(&key_file).unwrap();

        // A server stored as a node on this data directory would (generated key).
        let node = Secrets::new(
            None,
            &SecretsConfig::default(),
            StoreScope::Local {
                data_dir: data.clone(),
            },
        )
        .unwrap();
        let config: baton_upstream::ServerConfig = serde_json::from_value(
            serde_json::json!({"name": "s", "command": "x", "env": {"TOKEN": "hunter2"}}),
        )
        .unwrap();
        let sealed = node.seal_server(&config).unwrap();
        let s = store(&data).await;
        s.put_server(
            "s",
            serde_json::to_value(&sealed).unwrap(),
            baton_core::Timestamp::now(),
        )
        .await
        .unwrap();
        s.close().await;

        let data_arg = data.to_str().unwrap();
        let rotate = ["rotate", "--data-dir", data_arg, "--new-key-file", key_path];
        assert_eq!(run(args(&rotate)).await, ExitCode::SUCCESS);
        // Idempotent.
        assert_eq!(run(args(&rotate)).await, ExitCode::SUCCESS);
        let s = store(&data).await;
        let row = s.list_servers().await.unwrap().remove(0).config;
        s.close().await;
        let value = row["env"]["TOKEN"].as_str().unwrap();
        assert!(value.starts_with(&format!("enc:v1:{}:", new.id())), "{row}");
        let stored: baton_upstream::ServerConfig = serde_json::from_value(row).unwrap();
        let opened = Secrets::with_key(new)
            .resolve("s", &stored.validate().unwrap())
            .unwrap();
        let baton_upstream::config::Transport::Stdio { env, .. } = opened else {
            panic!("a stdio server");
        };
        assert_eq!(env["TOKEN"], "hunter2");

        // Refused while a node holds the data directory.
        let lock = std::fs::File::open(data.join("baton.lock")).unwrap();
        lock.lock().unwrap();
        assert_ne!(run(args(&rotate)).await, ExitCode::SUCCESS);
        drop(lock);
        // A missing key option is a usage error.
        assert!(
            Cli::try_parse_from(["secrets", "rotate", "--data-dir", data_arg]).is_err()
                || std::env::var(NEW_KEY_ENV).is_ok()
        );
    }
}
