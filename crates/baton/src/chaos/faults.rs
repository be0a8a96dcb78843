//! The fault injector: on a seeded random schedule, `kill -9` a process and restart it,
//! stop one (SIGSTOP) for longer than a lease and continue it, or restart the private
//! PostgreSQL server. Kinds are dealt from a shuffled deck, so every kind comes up
//! within the first few faults even in a short run.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::cluster::Cluster;
use super::history::{Fault, FaultKind, Recorder};

pub struct Schedule {
    pub seed: u64,
    /// The mean time between two faults.
    pub every: Duration,
    pub lease: Duration,
}

/// The kinds of fault a cluster can take.
pub fn kinds(cluster: &Cluster) -> Vec<FaultKind> {
    let mut k = vec![FaultKind::Kill, FaultKind::Pause];
    if cluster.pg.is_some() {
        k.push(FaultKind::PgRestart);
    }
    k
}

/// Injects faults until `stop`, finishing (healing) the fault under way; gives the
/// cluster back.
pub async fn run(
    mut cluster: Cluster,
    rec: Arc<Recorder>,
    schedule: Schedule,
    stop: CancellationToken,
) -> Cluster {
    let mut rng = StdRng::seed_from_u64(schedule.seed ^ 0x00fa_0175);
    let kinds = kinds(&cluster);
    let mut deck: Vec<FaultKind> = Vec::new();
    let every = schedule.every.as_millis().max(200) as u64;
    loop {
        let gap = Duration::from_millis(rng.random_range(every / 2..=every * 3 / 2));
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(gap) => {}
        }
        if deck.is_empty() {
            deck = kinds.clone();
            deck.shuffle(&mut rng);
        }
        let kind = deck.pop().expect("a full deck");
        let start_ms = rec.now_ms();
        let result = inject(&mut cluster, kind, &mut rng, schedule.lease).await;
        match result {
            Ok((target, detail, affects)) => rec.fault(Fault {
                kind,
                target,
                detail,
                start_ms,
                end_ms: rec.now_ms(),
                recovery_ms: recovery(kind, schedule.lease),
                affects,
            }),
            Err(e) => {
                eprintln!(
                    "chaos: fault {} could not be injected or healed: {e:#}",
                    kind.as_str()
                );
                if let Err(e) = cluster.heal().await {
                    eprintln!("chaos: healing failed: {e:#}");
                }
            }
        }
    }
    cluster
}

/// How long after healing a fault may still disturb answers: a restarted or continued
/// process answers at once, but after a PostgreSQL restart the pools reconnect and the
/// stores' feeds and singletons come back over up to a lease.
pub fn recovery(kind: FaultKind, lease: Duration) -> u64 {
    match kind {
        FaultKind::Kill | FaultKind::Pause => 1000,
        FaultKind::PgRestart => lease.as_millis() as u64 + 2000,
    }
}

/// Applies one fault and heals it; returns the target, a description and the nodes
/// whose answers it may disturb.
async fn inject(
    cluster: &mut Cluster,
    kind: FaultKind,
    rng: &mut StdRng,
    lease: Duration,
) -> anyhow::Result<(String, String, Vec<String>)> {
    let shared_store = cluster.pg.is_some();
    match kind {
        FaultKind::Kill => {
            let i = rng.random_range(0..cluster.procs.len());
            let down = Duration::from_millis(rng.random_range(100..1500));
            let exe = cluster.exe.clone();
            let p = &mut cluster.procs[i];
            p.kill9().await;
            tokio::time::sleep(down).await;
            p.start(&exe).await?;
            Ok((
                p.name.clone(),
                format!("kill -9, down {} ms, restarted", down.as_millis()),
                vec![p.name.clone()],
            ))
        }
        FaultKind::Pause => {
            let i = rng.random_range(0..cluster.procs.len());
            let pause = lease + Duration::from_millis(rng.random_range(300..1500));
            let p = &mut cluster.procs[i];
            p.signal("STOP").await?;
            p.paused = true;
            tokio::time::sleep(pause).await;
            p.signal("CONT").await?;
            p.paused = false;
            // A stopped process keeps its row locks and connections: on a shared store
            // every node may feel it.
            let affects = if shared_store {
                vec!["*".to_string()]
            } else {
                vec![p.name.clone()]
            };
            Ok((
                p.name.clone(),
                format!("SIGSTOP for {} ms, then SIGCONT", pause.as_millis()),
                affects,
            ))
        }
        FaultKind::PgRestart => {
            let pg = cluster
                .pg
                .as_ref()
                .expect("PostgreSQL faults need PostgreSQL");
            let detail = match *["restart-fast", "restart-immediate", "stop-start"]
                .choose(rng)
                .expect("choices")
            {
                "restart-fast" => {
                    pg.ctl(&["-m", "fast", "restart"]).await?;
                    "pg_ctl restart -m fast".to_string()
                }
                "restart-immediate" => {
                    pg.ctl(&["-m", "immediate", "restart"]).await?;
                    "pg_ctl restart -m immediate".to_string()
                }
                _ => {
                    let down = Duration::from_millis(rng.random_range(300..2000));
                    pg.ctl(&["-m", "immediate", "stop"]).await?;
                    tokio::time::sleep(down).await;
                    pg.ctl(&["start"]).await?;
                    format!(
                        "pg_ctl stop -m immediate, down {} ms, start",
                        down.as_millis()
                    )
                }
            };
            Ok(("postgres".into(), detail, vec!["*".into()]))
        }
    }
}
