//! `baton archive export`: the archived tasks or workflows that finished in a time range,
//! as plain JSON Lines (DuckDB's `read_json`, `jq`, pandas read them), read from the
//! archive itself with the node's configuration: no node needs to run.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use baton_core::Timestamp;
use baton_engine::archive::export;
use baton_server::Config;
use baton_server::config::Overrides;
use baton_store::ArchiveKind;
use clap::{Args, Subcommand, ValueEnum};

#[derive(Args)]
pub struct ArchiveArgs {
    #[command(subcommand)]
    action: ArchiveAction,
}

#[derive(Subcommand)]
enum ArchiveAction {
    /// Write the archived tasks (or workflows) that finished in [--since, --until) as
    /// plain JSON Lines: one task with its events (or one workflow with its steps' tasks)
    /// per line. Reads `[archive]` from the configuration; no node needs to run.
    Export(ExportArgs),
}

#[derive(Args)]
struct ExportArgs {
    /// From this instant on: RFC 3339 (2027-01-15T08:00:00Z) or a date (2027-01-15, its
    /// start in UTC).
    #[arg(long, value_parser = instant)]
    since: Timestamp,
    /// Up to this instant, excluded (same forms) [default: now].
    #[arg(long, value_parser = instant)]
    until: Option<Timestamp>,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// What to export.
    #[arg(long, value_enum, default_value_t = Kind::Tasks)]
    kind: Kind,
    /// TOML configuration file (its `[archive]`; `BATON_ARCHIVE__*` variables apply too).
    #[arg(long, env = "BATON_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// Tasks of no workflow.
    Tasks,
    /// Workflows, each with its steps' tasks.
    Workflows,
}

fn instant(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = Timestamp::parse_rfc3339(s) {
        return Ok(t);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let start = d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        return Ok(Timestamp::from_millis(start.timestamp_millis()));
    }
    Err(format!(
        "`{s}` is neither a date (2027-01-15) nor an RFC 3339 instant (2027-01-15T08:00:00Z)"
    ))
}

pub async fn run(args: ArchiveArgs) -> ExitCode {
    let ArchiveAction::Export(args) = args.action;
    let fail = |code: u8, m: String| {
        eprintln!("error: {m}");
        ExitCode::from(code)
    };
    let config = match Config::load(args.config.as_deref(), &Overrides::default()) {
        Ok(c) => c,
        Err(e) => return fail(2, e.to_string()),
    };
    let objects = match config.archive_objects() {
        Ok(Some(o)) => o,
        Ok(None) => {
            return fail(
                2,
                "no archive is configured: set `url` in the [archive] section of the \
                 configuration (or BATON_ARCHIVE__URL)"
                    .into(),
            );
        }
        Err(e) => return fail(2, e.to_string()),
    };
    let until = args.until.unwrap_or_else(Timestamp::now);
    if until <= args.since {
        return fail(2, "--until must be later than --since".into());
    }
    let kind = match args.kind {
        Kind::Tasks => ArchiveKind::Task,
        Kind::Workflows => ArchiveKind::Workflow,
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => return fail(1, format!("cannot write {}: {e}", path.display())),
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    // On standard error, drawn only when it is a terminal.
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} objects, {msg}")
            .expect("a valid template"),
    );
    let mut progress = |done: usize, of: usize, lines: u64| {
        bar.set_length(of as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("{lines} lines"));
    };
    let result = export(&objects, kind, args.since, until, &mut out, &mut progress).await;
    bar.finish_and_clear();
    drop(out);
    match result {
        Ok(done) => {
            let to = args
                .out
                .as_ref()
                .map(|p| format!(" to {}", p.display()))
                .unwrap_or_default();
            eprintln!(
                "exported {} {} from {} objects of {}{to}",
                done.lines,
                match kind {
                    ArchiveKind::Task => "tasks",
                    ArchiveKind::Workflow => "workflows",
                },
                done.objects,
                objects.url()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            if let Some(path) = &args.out {
                let _ = std::fs::remove_file(path);
            }
            fail(1, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_dates_or_rfc3339() {
        assert_eq!(
            instant("2027-01-15").unwrap(),
            Timestamp::parse_rfc3339("2027-01-15T00:00:00Z").unwrap()
        );
        assert_eq!(
            instant("2027-01-15T08:30:00+01:00").unwrap(),
            Timestamp::parse_rfc3339("2027-01-15T07:30:00Z").unwrap()
        );
        assert!(instant("yesterday").unwrap_err().contains("yesterday"));
    }
}
