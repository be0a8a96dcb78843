//! A JSON HTTP client for Baton's REST API, and the SSE parser.

use std::time::{Duration, Instant};

use serde_json::Value;

/// A JSON HTTP client for tests.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The error message of an error reply, asserting the error shape.
    pub fn error_message(&self) -> &str {
        assert!(
            self.status >= 400,
            "expected an error, got {} {}",
            self.status,
            self.body
        );
        assert!(
            self.body["error"]["code"].is_string(),
            "error body shape: {}",
            self.body
        );
        self.body["error"]["message"]
            .as_str()
            .expect("error message")
    }
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    /// Every request acts as `principal` (the `Baton-Principal` header a node without
    /// credentials accepts from loopback).
    pub fn as_principal(base: &str, principal: &str) -> Api {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("baton-principal", principal.parse().unwrap());
        Api {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .default_headers(headers)
                .build()
                .unwrap(),
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body ({status}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Submits and returns the task id, asserting a 202.
    pub async fn submit(&self, body: Value) -> String {
        let r = self.post("/v1/tasks", body).await;
        assert_eq!(r.status, 202, "{}", r.body);
        r.body["task_id"].as_str().unwrap().to_string()
    }

    pub async fn task(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1/tasks/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Long-polls until the task is final.
    pub async fn wait_final(&self, id: &str) -> Value {
        for _ in 0..30 {
            let r = self.get(&format!("/v1/tasks/{id}/result?wait=10")).await;
            if r.status == 200 {
                return self.task(id).await;
            }
            assert_eq!(r.status, 202, "{}", r.body);
        }
        panic!("task {id} did not finish");
    }

    /// Polls until the task reaches `status`.
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let t = self.task(id).await;
            if t["status"] == status {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} never became {status}: {t}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The task's events, from the SSE stream (which ends at the final state).
    pub async fn sse_events(
        &self,
        id: &str,
        last_event_id: Option<i64>,
    ) -> Vec<(i64, String, Value)> {
        let mut req = self.http.get(format!("{}/v1/tasks/{id}/events", self.base));
        if let Some(l) = last_event_id {
            req = req.header("Last-Event-ID", l.to_string());
        }
        let resp = req.send().await.expect("events");
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream"),
            "SSE content type"
        );
        let text = resp.text().await.unwrap();
        parse_sse(&text)
    }
}

pub fn parse_sse(text: &str) -> Vec<(i64, String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let (mut id, mut kind, mut data) = (None, String::new(), String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("event:") {
                kind = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if let Some(id) = id {
            out.push((id, kind, serde_json::from_str(&data).unwrap_or(Value::Null)));
        }
    }
    out
}
