//! `baton chaos`, short: the real binary runs its workload against real processes (one
//! SQLite node; two nodes and a worker on a private PostgreSQL cluster), injects every
//! kind of fault, and checks its invariants over the history and the final state. Zero
//! violations, every fault kind injected, every invariant checked over real work.
//!
//! `BATON_TEST_CHAOS_SEED` replays another seed.

use std::process::Command;
use std::time::Instant;

use crate::common::{baton_bin, testserver_bin};
use serde_json::Value;

fn seed(default: u64) -> u64 {
    std::env::var("BATON_TEST_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs `baton chaos` with `args` and returns its report.
fn chaos(store: &str, seed: u64, args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(baton_bin())
        .args(["chaos", "--store", store, "--seed", &seed.to_string()])
        .args(["--duration", "20s", "--fault-every", "2s", "--clients", "6"])
        .args(args)
        .arg("--keep")
        .arg(dir.path())
        .arg("--testserver")
        .arg(testserver_bin())
        .output()
        .expect("run baton chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    let report: Value = std::fs::read_to_string(dir.path().join("report.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| panic!("no report; stderr:\n{stderr}"));
    if !out.status.success() {
        // Keep the history, logs and data for a look.
        let kept = dir.keep();
        panic!(
            "baton chaos --store {store} --seed {seed} failed ({:?}); kept in {}:\n{stdout}\n{stderr}",
            out.status,
            kept.display()
        );
    }
    println!(
        "{store}: {:.1} s of wall time",
        started.elapsed().as_secs_f64()
    );
    report
}

fn assert_thorough(report: &Value, faults: &[&str]) {
    assert_eq!(report["violations"], 0, "{report:#}");
    assert_eq!(report["settled"], true, "everything finished: {report:#}");
    for kind in faults {
        assert!(
            report["faults"][kind].as_u64().unwrap_or(0) >= 1,
            "no `{kind}` fault was injected: {}",
            report["faults"]
        );
    }
    assert!(report["operations"].as_u64().unwrap() >= 300, "{report:#}");
    // Each invariant was checked over real work: tasks, cancellations, workflow steps,
    // side effects, answers outside fault windows.
    let minimum = [200, 200, 20, 30, 40, 200, 50];
    for (inv, min) in report["invariants"].as_array().unwrap().iter().zip(minimum) {
        assert!(
            inv["checked"].as_u64().unwrap() >= min,
            "invariant {} `{}` was checked only {} times (want {min})",
            inv["number"],
            inv["name"],
            inv["checked"]
        );
    }
}

#[test]
fn chaos_on_sqlite_finds_no_violation() {
    let report = chaos("sqlite", seed(7), &[]);
    assert_thorough(&report, &["kill", "pause"]);
}

#[test]
fn chaos_on_postgres_with_two_nodes_and_a_worker_finds_no_violation() {
    let report = chaos("postgres", seed(11), &["--nodes", "2", "--workers", "1"]);
    assert_thorough(&report, &["kill", "pause", "pg_restart"]);
}
