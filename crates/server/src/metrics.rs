//! `GET /metrics`: the node's metrics in the Prometheus text format.
//!
//! The metrics themselves are declared in [`baton_engine::metrics`]; this module installs
//! the Prometheus recorder (once per process), times every HTTP request by its route
//! template (in a `http.request` span that joins the caller's trace), and reads the gauges that come from the store and the upstream servers when
//! a scrape arrives, so that every node of a cluster reports the same queue depths.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use baton_engine::metrics as m;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

use crate::error::ApiError;
use crate::rest::AppState;

/// The process's recorder: the first node started in a process installs it (tests start
/// several; they share it, as they share the process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let mut b = PrometheusBuilder::new();
        for name in m::SECONDS_HISTOGRAMS {
            b = b
                .set_buckets_for_metric(Matcher::Full(name.into()), &m::SECONDS_BUCKETS)
                .expect("buckets are not empty");
        }
        b = b
            .set_buckets_for_metric(
                Matcher::Full(m::STORE_BATCH_SIZE.into()),
                &m::BATCH_BUCKETS,
            )
            .expect("buckets are not empty");
        let recorder = b.build_recorder();
        let handle = recorder.handle();
        // Another recorder already installed (an embedding program's): keep serving
        // ours, which then stays empty, rather than fail the node.
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics will be empty");
        }
        m::describe();
        handle
    })
}

/// Counts and times every request by route template (never the raw path: task ids
/// would make the labels unbounded).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    // A span per request, in the caller's trace when it sent a W3C `traceparent`.
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(tp) = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        baton_engine::trace::set_parent(&span, tp.trim());
    }
    let started = Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", resp.status().as_u16());
    let status = resp.status().as_u16().to_string();
    metrics::histogram!(m::HTTP_REQUEST_SECONDS, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(m::HTTP_REQUESTS, "route" => route, "method" => method, "status" => status)
        .increment(1);
    resp
}

/// `GET /metrics`.
pub async fn scrape(State(s): State<AppState>) -> Result<Response, ApiError> {
    let handle = handle();
    // Queue depths from the store, every principal's queues summed by name.
    let queues = s.engine.queues_view(None).await?;
    let mut depth: BTreeMap<(String, String), u64> = BTreeMap::new();
    for q in queues.queues {
        for (status, n) in q.counts {
            *depth.entry((q.name.clone(), status)).or_default() += n;
        }
    }
    for ((queue, status), n) in depth {
        metrics::gauge!(m::QUEUE_TASKS, "queue" => queue, "status" => status).set(n as f64);
    }
    metrics::gauge!(m::ACTIVE_TASKS).set(queues.active_tasks as f64);
    metrics::gauge!(m::RUNNING_HERE).set(queues.running_here as f64);
    for server in s.upstreams.list().iter().map(|srv| srv.status()) {
        let open = server.state == "circuit_open";
        metrics::gauge!(m::UPSTREAM_CIRCUIT_OPEN, "server" => server.name.clone()).set(if open {
            1.0
        } else {
            0.0
        });
        let up = server.state == "healthy";
        metrics::gauge!(m::UPSTREAM_UP, "server" => server.name).set(if up { 1.0 } else { 0.0 });
    }
    handle.run_upkeep();
    let mut body = handle.render();
    m::render_costs(&mut body);
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}

/// `GET /metrics` alone (`[telemetry] metrics_listen`), for a process without the API.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(state)
}
