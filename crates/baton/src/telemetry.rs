//! Logging, and traces when `[telemetry] otlp_endpoint` is set: Baton's spans (HTTP
//! request, submit, claim, run, each upstream call, finish) go to an OpenTelemetry
//! collector over OTLP/HTTP (protobuf), batched, with the W3C trace context propagated
//! (a `traceparent` header or MCP `_meta` on the way in; stored with the task; `_meta`
//! on upstream calls).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use baton_server::config::TelemetryConfig;

/// Exports the spans still buffered when the process ends.
pub struct Telemetry(Option<SdkTracerProvider>);

impl Telemetry {
    pub async fn shutdown(self) {
        if let Some(provider) = self.0 {
            // The exporter's blocking HTTP client must not be dropped on a runtime thread.
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = provider.shutdown() {
                    eprintln!("warning: could not export the last spans: {e}");
                }
            })
            .await;
        }
    }
}

fn log_layer() -> Box<dyn Layer<Registry> + Send + Sync> {
    let filter = std::env::var("BATON_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,tower_http=warn,rmcp=warn"));
    let json = std::env::var("BATON_LOG_FORMAT").is_ok_and(|f| f == "json");
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        layer.json().with_filter(filter).boxed()
    } else {
        layer.with_filter(filter).boxed()
    }
}

/// Logs to stderr (`BATON_LOG` filters, `BATON_LOG_FORMAT=json`).
pub fn init_logging() {
    let _ = tracing_subscriber::registry().with(log_layer()).try_init();
}

/// Logs, and traces when configured. Keep the answer and [`Telemetry::shutdown`] it at
/// the end.
pub fn init(cfg: &TelemetryConfig) -> Telemetry {
    let Some(endpoint) = cfg.otlp_endpoint.as_deref() else {
        init_logging();
        return Telemetry(None);
    };
    let url = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint.to_string()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url.clone())
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            init_logging();
            tracing::error!(error = %e, endpoint = url, "traces are off: the OTLP exporter could not be made");
            return Telemetry(None);
        }
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(cfg.service_name.clone())
                .build(),
        )
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("baton");
    // Baton's own spans; the libraries' (sqlx, hyper, rmcp) would only add noise.
    let spans = Targets::new()
        .with_target("baton", tracing::Level::INFO)
        .with_target("baton_engine", tracing::Level::INFO)
        .with_target("baton_server", tracing::Level::INFO)
        .with_target("baton_upstream", tracing::Level::INFO)
        .with_target("baton_mcp", tracing::Level::INFO);
    let _ = tracing_subscriber::registry()
        .with(log_layer())
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(spans),
        )
        .try_init();
    tracing::info!(
        endpoint = url,
        service = cfg.service_name,
        "sending traces over OTLP/HTTP"
    );
    Telemetry(Some(provider))
}
