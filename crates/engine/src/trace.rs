//! Trace context: the W3C `traceparent` a task keeps so that its runs, however much
//! later and on whichever node, join the trace of the request that made it.
//!
//! Spans are `tracing` spans; they become OpenTelemetry spans only when the binary
//! installs the OpenTelemetry layer and the W3C propagator (`[telemetry] otlp_endpoint`).
//! Without them every function here is a no-op that returns nothing.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct Map(HashMap<String, String>);

impl Injector for Map {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

impl Extractor for Map {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The `traceparent` of `span`, when it belongs to a sampled or remote trace.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let mut map = Map(HashMap::new());
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut map));
    map.0
        .remove("traceparent")
        .filter(|t| baton_core::task::is_traceparent(t))
}

/// The `traceparent` of the current span.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// Makes `span` a child of the trace `traceparent` names (a no-op when it names none).
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    if !baton_core::task::is_traceparent(traceparent) {
        return;
    }
    let map = Map(HashMap::from([(
        "traceparent".to_string(),
        traceparent.to_string(),
    )]));
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&map));
    let _ = span.set_parent(cx);
}
