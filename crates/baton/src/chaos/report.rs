//! What a run prints at the end (and keeps as `report.json`): operations by kind and
//! outcome, faults by kind, each invariant with its checks and violations, the verdict.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::check::{Invariant, Truth};
use super::history::{Fault, FaultKind, Op, OpKind, Outcome};

/// Violations printed per invariant (all are in `report.json`).
const SHOWN: usize = 25;

pub struct Summary<'a> {
    pub store: &'a str,
    pub seed: u64,
    pub duration_s: f64,
    pub wall_s: f64,
    pub ops: &'a [Op],
    pub faults: &'a [Fault],
    pub fault_kinds: &'a [FaultKind],
    pub invariants: &'a [Invariant],
    pub truth: &'a Truth,
    pub settled: bool,
}

/// Event kinds worth counting: what the faults made the engine do.
const TELLING: [&str; 7] = [
    "started",
    "lease_expired",
    "released",
    "retry_scheduled",
    "retried",
    "cancel_requested",
    "cancelled",
];

impl Summary<'_> {
    pub fn violations(&self) -> usize {
        self.invariants.iter().map(|i| i.violations.len()).sum()
    }

    fn by_kind(&self) -> BTreeMap<OpKind, [usize; 3]> {
        let mut m: BTreeMap<OpKind, [usize; 3]> = BTreeMap::new();
        for op in self.ops {
            let i = match op.outcome {
                Outcome::Ok => 0,
                Outcome::Fail => 1,
                Outcome::Info => 2,
            };
            m.entry(op.kind).or_default()[i] += 1;
        }
        m
    }

    /// Final statuses of the store's tasks, and counts of telling events.
    fn store_counts(&self) -> (BTreeMap<&str, usize>, BTreeMap<&'static str, usize>) {
        let mut status = BTreeMap::new();
        let mut events: BTreeMap<&'static str, usize> = TELLING.iter().map(|k| (*k, 0)).collect();
        for t in self.truth.tasks.values() {
            *status.entry(t.status.as_str()).or_insert(0) += 1;
            for e in &t.events {
                if let Some(n) = events.get_mut(e.kind.as_str()) {
                    *n += 1;
                }
            }
        }
        (status, events)
    }

    fn faults_by_kind(&self) -> BTreeMap<FaultKind, usize> {
        let mut m: BTreeMap<FaultKind, usize> = self.fault_kinds.iter().map(|k| (*k, 0)).collect();
        for f in self.faults {
            *m.entry(f.kind).or_default() += 1;
        }
        m
    }

    pub fn print(&self) {
        println!();
        println!(
            "baton chaos report: store {}, seed {}, workload {:.0} s, wall time {:.1} s",
            self.store, self.seed, self.duration_s, self.wall_s
        );
        println!();
        println!(
            "{:<18} {:>7} {:>7} {:>7} {:>7}",
            "operations", "ok", "fail", "info", "total"
        );
        let mut total = [0usize; 3];
        for (kind, c) in self.by_kind() {
            println!(
                "  {:<16} {:>7} {:>7} {:>7} {:>7}",
                kind.as_str(),
                c[0],
                c[1],
                c[2],
                c.iter().sum::<usize>()
            );
            for i in 0..3 {
                total[i] += c[i];
            }
        }
        println!(
            "  {:<16} {:>7} {:>7} {:>7} {:>7}",
            "all",
            total[0],
            total[1],
            total[2],
            total.iter().sum::<usize>()
        );
        let five = self
            .ops
            .iter()
            .filter(|o| o.status.is_some_and(|s| s >= 500))
            .count();
        println!("  (answered 5xx: {five})");
        let (status, events) = self.store_counts();
        let list = |m: &BTreeMap<&str, usize>| {
            m.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!();
        println!(
            "final state: {} tasks ({}), {} workflows",
            self.truth.tasks.len(),
            list(&status),
            self.truth.workflows.len()
        );
        println!("  events: {}", list(&events));
        println!();
        println!("faults injected");
        for (kind, n) in self.faults_by_kind() {
            println!("  {:<28} {:>5}", kind.as_str(), n);
        }
        println!();
        println!("{:<62} {:>8} {:>10}", "invariants", "checked", "violations");
        for inv in self.invariants {
            println!(
                "  {}. {:<57} {:>8} {:>10}",
                inv.number,
                inv.name,
                inv.checked,
                inv.violations.len()
            );
        }
        for inv in self.invariants.iter().filter(|i| !i.violations.is_empty()) {
            println!();
            println!("violations of {}. {}:", inv.number, inv.name);
            for v in inv.violations.iter().take(SHOWN) {
                println!("  {}: {}", v.subject, v.evidence);
            }
            if inv.violations.len() > SHOWN {
                println!(
                    "  … and {} more (see report.json with --keep)",
                    inv.violations.len() - SHOWN
                );
            }
        }
        println!();
        if !self.settled {
            println!("note: not everything had finished when the settle time ran out");
        }
        match self.violations() {
            0 => println!("verdict: PASS, no violations (seed {})", self.seed),
            n => println!(
                "verdict: FAIL, {n} violations (replay with --seed {})",
                self.seed
            ),
        }
    }

    pub fn json(&self) -> Value {
        let ops: BTreeMap<&str, Value> = self
            .by_kind()
            .into_iter()
            .map(|(k, c)| (k.as_str(), json!({"ok": c[0], "fail": c[1], "info": c[2]})))
            .collect();
        let faults: BTreeMap<&str, usize> = self
            .faults_by_kind()
            .into_iter()
            .map(|(k, n)| (fault_key(k), n))
            .collect();
        json!({
            "store": self.store,
            "seed": self.seed,
            "duration_s": self.duration_s,
            "wall_s": self.wall_s,
            "operations": self.ops.len(),
            "ops": ops,
            "faults": faults,
            "fault_log": self.faults,
            "invariants": self.invariants,
            "violations": self.violations(),
            "tasks": self.truth.tasks.len(),
            "task_status": self.store_counts().0,
            "events": self.store_counts().1,
            "workflows": self.truth.workflows.len(),
            "settled": self.settled,
        })
    }
}

pub fn fault_key(k: FaultKind) -> &'static str {
    match k {
        FaultKind::Kill => "kill",
        FaultKind::Pause => "pause",
        FaultKind::PgRestart => "pg_restart",
    }
}
