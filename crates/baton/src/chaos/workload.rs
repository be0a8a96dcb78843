//! The workload: concurrent clients, each a seeded random mix of submissions, batches,
//! idempotent resubmits, cancels, retries, workflows, hostile input and reads over REST.
//! Every request goes into the history with its answer.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::client::{Body, Client, KEEP_KNOWN, Workload};
use super::cluster::SERVER;
use super::history::{Expect, OpKind};
use super::hostile;

impl Workload {
    /// Starts `clients` clients; they stop (after their current operation) on `stop`.
    pub fn spawn(
        self: &Arc<Self>,
        clients: usize,
        stop: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..clients)
            .map(|c| {
                let w = self.clone();
                let stop = stop.clone();
                tokio::spawn(async move { w.client(c, stop).await })
            })
            .collect()
    }

    async fn client(&self, c: usize, stop: CancellationToken) {
        let mix = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(c as u64 + 1);
        let mut rng = StdRng::seed_from_u64(self.seed ^ mix);
        let mut n = 0u64;
        while !stop.is_cancelled() {
            n += 1;
            let mut cx = Client {
                w: self,
                c,
                rng: &mut rng,
                n,
            };
            match cx.rng.random_range(0..100) {
                0..28 => cx.submit().await,
                28..36 => cx.batch().await,
                36..43 => cx.idempotent().await,
                43..53 => cx.cancel().await,
                53..57 => cx.stubborn_cancel().await,
                57..63 => cx.retry().await,
                63..75 => cx.workflow().await,
                75..85 => hostile::one(&mut cx).await,
                _ => cx.read().await,
            }
            let pause = rng.random_range(0..40);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

impl Client<'_> {
    fn pick_task(&mut self, retryable: bool) -> Option<String> {
        let k = self.w.known.lock().expect("known");
        let list = if retryable { &k.retryable } else { &k.tasks };
        // Mostly recent ones: they are the likeliest to be still running.
        let from = list.len().saturating_sub(if self.rng.random_bool(0.7) {
            30
        } else {
            KEEP_KNOWN
        });
        list[from..].choose(self.rng).cloned()
    }

    fn pick_workflow(&mut self) -> Option<String> {
        self.w
            .known
            .lock()
            .expect("known")
            .workflows
            .choose(self.rng)
            .cloned()
    }

    async fn submit(&mut self) {
        let (body, failing) = self.task_body();
        let path = if self.rng.random_bool(0.1) {
            "/v1/tasks?wait=2"
        } else {
            "/v1/tasks"
        };
        let op = self.post(OpKind::Submit, path, body).await;
        self.remember(&op, failing);
    }

    async fn batch(&mut self) {
        let n = self.rng.random_range(2..16);
        let tasks: Vec<Value> = (0..n).map(|_| self.task_body().0).collect();
        let op = self
            .post(OpKind::Batch, "/v1/tasks/batch", json!({"tasks": tasks}))
            .await;
        self.remember(&op, false);
    }

    /// The same key and arguments twice (the second must answer the first task), then
    /// the same key with other arguments (must be refused).
    async fn idempotent(&mut self) {
        let key = if self.rng.random_bool(0.25) {
            hostile::odd_key(self.rng)
        } else {
            format!("key-{}-{}-{}", self.w.seed, self.c, self.n)
        };
        let tool = if self.rng.random_bool(0.5) {
            "baton__echo".to_string()
        } else {
            format!("{SERVER}__effect")
        };
        let args = |v: u64| {
            if tool == "baton__echo" {
                json!({"v": v})
            } else {
                json!({"ms": v % 500})
            }
        };
        let body = json!({"tool": tool, "arguments": args(self.n), "idempotency_key": key});
        let first = self
            .post(OpKind::IdemFirst, "/v1/tasks", body.clone())
            .await;
        self.remember(&first, false);
        let original = first.tasks.first().cloned();
        let expect = original
            .clone()
            .map_or(Expect::Nothing, |task| Expect::SameTask { task });
        // A header carries visible ASCII only.
        let header_ok = key.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        let replay = if self.rng.random_bool(0.3) && header_ok {
            let mut b = body.clone();
            b.as_object_mut().map(|o| o.remove("idempotency_key"));
            self.send(
                OpKind::IdemReplay,
                Method::POST,
                "/v1/tasks",
                Body::Json(b),
                &[("idempotency-key", key.clone())],
                expect,
            )
            .await
        } else {
            self.send(
                OpKind::IdemReplay,
                Method::POST,
                "/v1/tasks",
                Body::Json(body),
                &[],
                expect,
            )
            .await
        };
        self.remember(&replay, false);
        let existing = original.or_else(|| replay.tasks.first().cloned());
        let Some(task) = existing else { return };
        let other = json!({"tool": tool, "arguments": args(self.n + 1), "idempotency_key": key});
        let op = self
            .send(
                OpKind::IdemConflict,
                Method::POST,
                "/v1/tasks",
                Body::Json(other),
                &[],
                Expect::Conflict { task: Some(task) },
            )
            .await;
        self.remember(&op, false);
    }

    async fn cancel(&mut self) {
        let id = if self.rng.random_bool(0.5) {
            self.pick_task(false)
        } else {
            // A task due later, cancelled at once: it must never run (unless retried).
            let (mut body, _) = self.task_body();
            body["delay_ms"] = json!(self.rng.random_range(1500..4000));
            let op = self.post(OpKind::Submit, "/v1/tasks", body).await;
            self.remember(&op, true);
            op.tasks.first().cloned()
        };
        let Some(id) = id else { return };
        let op = self
            .send(
                OpKind::Cancel,
                Method::DELETE,
                &format!("/v1/tasks/{id}"),
                Body::None,
                &[],
                Expect::Nothing,
            )
            .await;
        self.remember(&op, true);
    }

    /// A tool that ignores cancellation, cancelled while it runs.
    async fn stubborn_cancel(&mut self) {
        let ms = self.rng.random_range(300..1500);
        let body = json!({"tool": format!("{SERVER}__stubborn"), "arguments": {"ms": ms}});
        let op = self.post(OpKind::Submit, "/v1/tasks", body).await;
        self.remember(&op, true);
        let Some(id) = op.tasks.first().cloned() else {
            return;
        };
        let wait = self.rng.random_range(50..600);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let op = self
            .send(
                OpKind::Cancel,
                Method::DELETE,
                &format!("/v1/tasks/{id}"),
                Body::None,
                &[],
                Expect::Nothing,
            )
            .await;
        self.remember(&op, true);
    }

    async fn retry(&mut self) {
        let Some(id) = self.pick_task(true) else {
            return;
        };
        let op = self
            .post(OpKind::Retry, &format!("/v1/tasks/{id}/retry"), Value::Null)
            .await;
        self.remember(&op, true);
    }

    async fn read(&mut self) {
        let task = self.pick_task(false);
        let path = match (self.rng.random_range(0..8), task) {
            (0, Some(t)) => format!("/v1/tasks/{t}"),
            (1, Some(t)) => format!("/v1/tasks/{t}/result?wait=1"),
            (2, _) => "/v1/tasks?limit=20".to_string(),
            (3, _) => "/v1/tasks?status=running&limit=50".to_string(),
            (4, _) => match self.pick_workflow() {
                Some(w) => format!("/v1/workflows/{w}"),
                None => "/v1/workflows".to_string(),
            },
            (5, _) => "/v1/queues".to_string(),
            (6, _) => "/v1/peers".to_string(),
            _ => "/v1/stats".to_string(),
        };
        let op = self.get(&path).await;
        self.remember(&op, false);
    }

    /// A small DAG; sometimes cancelled mid-run, sometimes followed to its end and
    /// retried when it failed or was cancelled.
    async fn workflow(&mut self) {
        let def = self.definition();
        let op = self.post(OpKind::Workflow, "/v1/workflows", def).await;
        self.remember(&op, false);
        let Some(id) = op.workflow.clone() else {
            return;
        };
        match self.rng.random_range(0..10) {
            0..3 => {
                let wait = self.rng.random_range(0..900);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                let op = self
                    .send(
                        OpKind::WorkflowCancel,
                        Method::DELETE,
                        &format!("/v1/workflows/{id}"),
                        Body::None,
                        &[],
                        Expect::Nothing,
                    )
                    .await;
                self.remember(&op, false);
                if self.rng.random_bool(0.5) {
                    self.follow_and_retry(&id).await;
                }
            }
            3..6 => self.follow_and_retry(&id).await,
            _ => {}
        }
    }

    /// Reads the workflow until it ends (at most ~10 s); retries it if it failed or was
    /// cancelled.
    async fn follow_and_retry(&mut self, id: &str) {
        for _ in 0..40 {
            let op = self.get(&format!("/v1/workflows/{id}")).await;
            self.remember(&op, false);
            match op.answer_status() {
                Some("failed" | "cancelled") => {
                    let op = self
                        .post(
                            OpKind::WorkflowRetry,
                            &format!("/v1/workflows/{id}/retry"),
                            Value::Null,
                        )
                        .await;
                    self.remember(&op, false);
                    return;
                }
                Some("completed") => return,
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
}
