//! Schedules against a clock the test moves: after "downtime" (the clock jumps), a
//! `catch_up: latest` schedule fires the latest missed tick once and a `none` one fires
//! none; neither fires a tick early.

use std::sync::Arc;
use std::time::Duration;

use baton_engine::clock::Clock;
use baton_engine::schedules::{CatchUp, ScheduleRequest};
use baton_engine::tools::ToolRegistry;
use serde_json::json;

use crate::common::{BACKENDS, OWNER, eventually, fast_config, req, start_on};

fn every_five(name: &str, catch_up: CatchUp) -> ScheduleRequest {
    ScheduleRequest {
        name: name.into(),
        cron: "*/5 * * * * *".into(),
        timezone: None,
        task: Some(req("baton__echo", json!({"from": name}))),
        workflow: None,
        overlap: None,
        catch_up: Some(catch_up),
        paused: None,
    }
}

#[tokio::test]
async fn missed_ticks_follow_catch_up() {
    for backend in BACKENDS {
        let (clock, control) = Clock::adjustable();
        let tools = Arc::new(ToolRegistry::with_builtins("__"));
        let (engine, _guard) = start_on(backend, fast_config(), tools, clock).await;
        engine
            .create_schedule(OWNER, every_five("latest", CatchUp::Latest))
            .await
            .unwrap();
        engine
            .create_schedule(OWNER, every_five("none", CatchUp::None))
            .await
            .unwrap();
        // A minute of downtime, as the scheduler sees it.
        let jumped_from = engine.now();
        control.advance(Duration::from_secs(60));
        let now = engine.now();
        let missed = |t: baton_core::Timestamp| {
            t > jumped_from.saturating_add(Duration::from_secs(5)) && t <= now
        };
        eventually(
            "the latest missed tick fires",
            Duration::from_secs(20),
            async || {
                engine
                    .schedule_runs(OWNER, "latest", None)
                    .await
                    .unwrap()
                    .runs
                    .iter()
                    .any(|r| missed(r.tick_at))
            },
        )
        .await;
        // Give a wrongly fired `none` tick the time to show.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let latest = engine
            .schedule_runs(OWNER, "latest", None)
            .await
            .unwrap()
            .runs;
        let caught: Vec<_> = latest.iter().filter(|r| missed(r.tick_at)).collect();
        assert_eq!(
            caught.len(),
            1,
            "{backend:?}: one missed tick fired: {latest:?}"
        );
        let none = engine
            .schedule_runs(OWNER, "none", None)
            .await
            .unwrap()
            .runs;
        assert!(
            !none.iter().any(|r| missed(r.tick_at)),
            "{backend:?}: catch_up none fired a missed tick: {none:?}"
        );
        // Nothing fires early.
        for name in ["latest", "none"] {
            for r in engine.schedule_runs(OWNER, name, None).await.unwrap().runs {
                let task = engine
                    .get(OWNER, r.task_id.as_deref().unwrap().parse().unwrap())
                    .await
                    .unwrap();
                assert!(
                    task.created_at >= r.tick_at,
                    "{backend:?}: {name} fired early"
                );
            }
        }
        engine.shutdown().await;
    }
}
