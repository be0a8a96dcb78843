//! The test tools: their `tools/list` definitions and their behaviour.
//!
//! Schemas are written out as JSON rather than derived, because Baton's tests
//! depend on their exact shape (ranges, patterns, `additionalProperties`).
//! Arguments are still parsed into `deny_unknown_fields` structs, and range or
//! pattern violations are answered with `-32602` like any malformed call.

use std::{collections::BTreeMap, sync::Arc, sync::LazyLock, time::Duration};

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        AudioContent, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
        ImageContent, JsonObject, MetaObject, ProgressNotificationParam, ProtocolVersion, Resource,
        ResourceContents,
    },
    service::RequestContext,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{server::TestServer, tasks};

/// Ids and keys become file names in the state dir, so they are restricted to
/// a safe alphabet (no `/`, no leading dot).
pub const ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$";
/// MCP's recommended tool-name alphabet, for `add_tool`.
const TOOL_NAME_PATTERN: &str = "^[A-Za-z0-9_.-]{1,128}$";
const MAX_DURATION_MS: u64 = 600_000;
/// The logger name of every `notifications/message` the `log` tool sends.
const LOGGER: &str = "baton-testserver";

/// A 1x1 grey PNG and an 8-sample silent 8 kHz WAV: the smallest valid files
/// of their kind, so `rich` stays small but a client can still decode them.
const TINY_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";
const TINY_WAV: &str = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

fn object(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("tool schemas are JSON objects"),
    }
}

fn tool(name: &'static str, description: &'static str, input: Value) -> rmcp::model::Tool {
    rmcp::model::Tool::new(name, description, object(input))
}

fn no_args() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": false})
}

/// The built-in tools, in the order `tools/list` reports them.
pub static BUILTIN_TOOLS: LazyLock<Vec<rmcp::model::Tool>> = LazyLock::new(|| {
    let mut tools = vec![
        tool(
            "echo",
            "Returns the given text unchanged, as text and as structuredContent {text}.",
            json!({
                "type": "object",
                "properties": {"text": {"type": "string", "description": "Text to echo back."}},
                "required": ["text"],
                "additionalProperties": false
            }),
        )
        .with_raw_output_schema(object(json!({
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": false
        }))),
        tool(
            "add",
            "Adds two numbers; returns the sum as text and as structuredContent {sum}.",
            json!({
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
                "additionalProperties": false
            }),
        )
        .with_raw_output_schema(object(json!({
            "type": "object",
            "properties": {"sum": {"type": "number"}},
            "required": ["sum"],
            "additionalProperties": false
        }))),
        tool(
            "slow",
            "Works for duration_ms split into `steps` steps, sending notifications/progress \
             after each step when the request has a progress token. Stops promptly when \
             cancelled. With an id, records each call in slow-<id>.started (a line each) and \
             a cancellation in slow-<id>.cancelled, in the state dir.",
            json!({
                "type": "object",
                "properties": {
                    "duration_ms": {"type": "integer", "minimum": 0, "maximum": MAX_DURATION_MS,
                                    "description": "Total run time in milliseconds."},
                    "steps": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10,
                              "description": "Number of progress steps."},
                    "id": {"type": "string", "pattern": ID_PATTERN,
                           "description": "Names the state files of this call."}
                },
                "required": ["duration_ms"],
                "additionalProperties": false
            }),
        ),
        tool(
            "hang",
            "Never returns until the call is cancelled. Records hang-<id>.started when called \
             and hang-<id>.cancelled when cancelled, in the state dir.",
            json!({
                "type": "object",
                "properties": {"id": {"type": "string", "pattern": ID_PATTERN}},
                "required": ["id"],
                "additionalProperties": false
            }),
        ),
        tool(
            "crash",
            "Exits the server process immediately without replying (simulates an upstream crash).",
            json!({
                "type": "object",
                "properties": {"exit_code": {"type": "integer", "minimum": 0, "maximum": 255,
                                             "default": 1}},
                "additionalProperties": false
            }),
        ),
        tool(
            "flaky",
            "The first `failures` calls for a key crash the process (exit 1); later calls \
             succeed. The per-key count is kept in the state dir (flaky-<key>) so it survives \
             restarts; without a state dir it is kept in memory.",
            json!({
                "type": "object",
                "properties": {
                    "key": {"type": "string", "pattern": ID_PATTERN},
                    "failures": {"type": "integer", "minimum": 0}
                },
                "required": ["key", "failures"],
                "additionalProperties": false
            }),
        ),
        tool(
            "strict",
            "Echoes its arguments. Has a strict schema, to test argument validation.",
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "pattern": "^[a-z]+$"},
                    "count": {"type": "integer", "minimum": 1, "maximum": 10},
                    "mode": {"type": "string", "enum": ["fast", "slow"]}
                },
                "required": ["name", "count", "mode"],
                "additionalProperties": false
            }),
        ),
        tool(
            "fail_tool",
            "Returns a tool result with isError: true and the message as text.",
            json!({
                "type": "object",
                "properties": {"message": {"type": "string"}},
                "required": ["message"],
                "additionalProperties": false
            }),
        ),
        tool(
            "rich",
            "Returns one block of every content type (text, image, audio, resource_link, \
             resource), structuredContent {kinds} and result _meta, to test pass-through.",
            no_args(),
        )
        .with_raw_output_schema(object(json!({
            "type": "object",
            "properties": {"kinds": {"type": "array", "items": {"type": "string"}}},
            "required": ["kinds"],
            "additionalProperties": false
        }))),
        tool(
            "log",
            "Sends each message as a notifications/message (level info, logger \
             baton-testserver), then returns \"logged N\" with N the number sent.",
            json!({
                "type": "object",
                "properties": {"messages": {"type": "array", "items": {"type": "string"}}},
                "required": ["messages"],
                "additionalProperties": false
            }),
        ),
        tool("pid", "Returns the server's process id.", no_args())
            .with_raw_output_schema(pid_output_schema()),
        tool(
            "spawn_child",
            "Spawns `sleep 600` in the server's process group and returns its pid.",
            no_args(),
        )
        .with_raw_output_schema(pid_output_schema()),
        tool(
            "add_tool",
            "Adds an echo-like tool with the given name (again with another version: \
             changes its input schema) and sends notifications/tools/list_changed.",
            json!({
                "type": "object",
                "properties": {"name": {"type": "string", "pattern": TOOL_NAME_PATTERN},
                               "version": {"type": "integer", "minimum": 0}},
                "required": ["name"],
                "additionalProperties": false
            }),
        ),
        tasks::tool_definition(),
    ];
    if chaos_tools_enabled() {
        tools.extend(chaos_tools());
    }
    tools
});

/// The environment variable that adds `effect` and `stubborn` to the tools (`baton chaos`
/// sets it), so that the default list stays the one other tests expect.
pub const CHAOS_TOOLS_ENV: &str = "BATON_TESTSERVER_CHAOS_TOOLS";

fn chaos_tools_enabled() -> bool {
    std::env::var_os(CHAOS_TOOLS_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The tools of `baton chaos`: side effects it can count afterwards.
fn chaos_tools() -> Vec<rmcp::model::Tool> {
    let key = json!({"type": "string", "pattern": ID_PATTERN,
                     "description": "Names the effect file (default: the Baton task, from \
                                     _meta[\"baton/parentTask\"])."});
    vec![
        tool(
            "effect",
            "Performs a recorded side effect: appends one line to effect-<key> in the state \
             dir as soon as it is called, then works `ms` in `steps` steps with progress, \
             stopping when cancelled.",
            json!({
                "type": "object",
                "properties": {
                    "key": key,
                    "ms": {"type": "integer", "minimum": 0, "maximum": MAX_DURATION_MS},
                    "steps": {"type": "integer", "minimum": 1, "maximum": 1000}
                },
                "additionalProperties": false
            }),
        ),
        tool(
            "stubborn",
            "Ignores cancellation: appends one line to effect-<key> in the state dir, works \
             `ms`, and when cancelled keeps working `ms` more before it returns.",
            json!({
                "type": "object",
                "properties": {
                    "key": key,
                    "ms": {"type": "integer", "minimum": 0, "maximum": MAX_DURATION_MS}
                },
                "required": ["ms"],
                "additionalProperties": false
            }),
        ),
    ]
}

fn pid_output_schema() -> Arc<JsonObject> {
    object(json!({
        "type": "object",
        "properties": {"pid": {"type": "integer"}},
        "required": ["pid"],
        "additionalProperties": false
    }))
}

/// The definition of a tool added at runtime by `add_tool`; a version after 0 changes its
/// input schema (the text's description), not what it accepts.
pub fn dynamic_tool(name: &str, version: u32) -> rmcp::model::Tool {
    let mut text = json!({"type": "string"});
    if version > 0 {
        text["description"] = json!(format!("version {version}"));
    }
    rmcp::model::Tool::new(
        name.to_owned(),
        "Added at runtime by add_tool: returns the given text unchanged.",
        object(json!({
            "type": "object",
            "properties": {"text": text},
            "required": ["text"],
            "additionalProperties": false
        })),
    )
}

pub fn is_builtin(name: &str) -> bool {
    BUILTIN_TOOLS.iter().any(|t| t.name == name)
}

pub fn parse_args<T: DeserializeOwned>(args: Option<JsonObject>) -> Result<T, McpError> {
    serde_json::from_value(Value::Object(args.unwrap_or_default()))
        .map_err(|e| McpError::invalid_params(format!("invalid arguments: {e}"), None))
}

/// Checks a string argument against [`ID_PATTERN`] (serde cannot).
pub fn check_id(field: &str, value: &str) -> Result<(), McpError> {
    let mut chars = value.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && value.len() <= 128 {
        Ok(())
    } else {
        Err(McpError::invalid_params(
            format!("{field} must match {ID_PATTERN}"),
            None,
        ))
    }
}

pub fn check_duration(duration_ms: u64) -> Result<(), McpError> {
    if duration_ms > MAX_DURATION_MS {
        return Err(McpError::invalid_params(
            format!("duration_ms must be at most {MAX_DURATION_MS}"),
            None,
        ));
    }
    Ok(())
}

pub fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

fn structured_result(text: impl Into<String>, structured: Value) -> CallToolResult {
    let mut result = text_result(text);
    result.structured_content = Some(structured);
    result
}

/// The error a handler returns once its request was cancelled. The service
/// drops responses to cancelled requests, so nobody sees it.
pub fn cancelled_error() -> McpError {
    McpError::internal_error("request cancelled", None)
}

/// Dispatches one `tools/call`.
pub async fn call(
    server: &TestServer,
    request: CallToolRequestParams,
    ctx: RequestContext<RoleServer>,
) -> Result<CallToolResponse, McpError> {
    let args = request.arguments;
    let result = match request.name.as_ref() {
        "echo" => echo(parse_args(args)?),
        "add" => add(parse_args(args)?),
        "slow" => slow(server, parse_args(args)?, &ctx).await?,
        "hang" => hang(server, parse_args(args)?, &ctx).await?,
        "crash" => crash(parse_args(args)?),
        "flaky" => flaky(server, parse_args(args)?)?,
        "strict" => strict(parse_args(args)?)?,
        "fail_tool" => fail_tool(parse_args(args)?),
        "rich" => {
            parse_args::<NoArgs>(args)?;
            rich()
        }
        "log" => log(server, parse_args(args)?, &ctx).await,
        "pid" => {
            parse_args::<NoArgs>(args)?;
            let pid = std::process::id();
            structured_result(pid.to_string(), json!({"pid": pid}))
        }
        "spawn_child" => {
            parse_args::<NoArgs>(args)?;
            spawn_child()?
        }
        "add_tool" => add_tool(server, parse_args(args)?).await?,
        "effect" if chaos_tools_enabled() => effect(server, parse_args(args)?, &ctx).await?,
        "stubborn" if chaos_tools_enabled() => stubborn(server, parse_args(args)?, &ctx).await?,
        // task_job may answer with a task instead of a result.
        "task_job" => return tasks::call(server, parse_args(args)?, &ctx).await,
        name if server.shared().has_dynamic_tool(name) => echo(parse_args(args)?),
        name => {
            return Err(McpError::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        }
    };
    Ok(result.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoArgs {
    text: String,
}

fn echo(args: EchoArgs) -> CallToolResult {
    structured_result(args.text.clone(), json!({"text": args.text}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddArgs {
    a: f64,
    b: f64,
}

fn add(args: AddArgs) -> CallToolResult {
    let sum = args.a + args.b;
    structured_result(sum.to_string(), json!({"sum": sum}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlowArgs {
    duration_ms: u64,
    #[serde(default = "default_steps")]
    steps: u32,
    id: Option<String>,
}

fn default_steps() -> u32 {
    10
}

async fn slow(
    server: &TestServer,
    args: SlowArgs,
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResult, McpError> {
    check_duration(args.duration_ms)?;
    if !(1..=1000).contains(&args.steps) {
        return Err(McpError::invalid_params(
            "steps must be between 1 and 1000",
            None,
        ));
    }
    if let Some(id) = &args.id {
        check_id("id", id)?;
        // One line per call, so a test can count the calls made.
        if let Some(state) = server.shared().state() {
            state.record(&format!("slow-{id}.started"));
        }
    }
    let token = ctx.meta.get_progress_token();
    let start = Instant::now();
    let steps = u64::from(args.steps);
    for step in 1..=steps {
        // Step deadlines are measured from the start, so rounding does not
        // accumulate and the whole call lasts duration_ms.
        let deadline = start + Duration::from_millis(args.duration_ms * step / steps);
        tokio::select! {
            () = ctx.ct.cancelled() => {
                tracing::info!(step, "slow cancelled");
                if let (Some(state), Some(id)) = (server.shared().state(), &args.id) {
                    state.record(&format!("slow-{id}.cancelled"));
                }
                return Err(cancelled_error());
            }
            () = tokio::time::sleep_until(deadline) => {}
        }
        if let Some(token) = &token {
            let progress = ProgressNotificationParam::new(token.clone(), step as f64)
                .with_total(steps as f64)
                .with_message(format!("step {step} of {steps}"));
            if let Err(error) = ctx.peer.notify_progress(progress).await {
                tracing::warn!(%error, "cannot send progress");
            }
        }
    }
    Ok(text_result(format!("done after {} ms", args.duration_ms)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HangArgs {
    id: String,
}

async fn hang(
    server: &TestServer,
    args: HangArgs,
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResult, McpError> {
    check_id("id", &args.id)?;
    let state = server.shared().state();
    if let Some(state) = state {
        state.record(&format!("hang-{}.started", args.id));
    }
    ctx.ct.cancelled().await;
    tracing::info!(id = %args.id, "hang cancelled");
    if let Some(state) = state {
        state.record(&format!("hang-{}.cancelled", args.id));
    }
    Err(cancelled_error())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CrashArgs {
    #[serde(default = "default_exit_code")]
    exit_code: u8,
}

fn default_exit_code() -> u8 {
    1
}

fn crash(args: CrashArgs) -> ! {
    tracing::warn!(exit_code = args.exit_code, "crash requested: exiting now");
    std::process::exit(i32::from(args.exit_code))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlakyArgs {
    key: String,
    failures: u64,
}

fn flaky(server: &TestServer, args: FlakyArgs) -> Result<CallToolResult, McpError> {
    check_id("key", &args.key)?;
    let shared = server.shared();
    let file = format!("flaky-{}", args.key);
    let failed_so_far = match shared.state() {
        Some(state) => state.read_counter(&file),
        None => shared.flaky_count(&args.key),
    };
    if failed_so_far < args.failures {
        // Count the failure before dying, so the next process sees it.
        match shared.state() {
            Some(state) => state.write_counter(&file, failed_so_far + 1),
            None => shared.set_flaky_count(&args.key, failed_so_far + 1),
        }
        tracing::warn!(key = %args.key, failure = failed_so_far + 1, "flaky: exiting now");
        std::process::exit(1);
    }
    Ok(text_result(format!("ok after {failed_so_far} failures")))
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Fast,
    Slow,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictArgs {
    name: String,
    count: u8,
    mode: Mode,
}

fn strict(args: StrictArgs) -> Result<CallToolResult, McpError> {
    // serde checks types, required fields, unknown fields and the enum; the
    // rest of the schema is checked here so the server never accepts what
    // its schema forbids.
    if args.name.is_empty() || !args.name.chars().all(|c| c.is_ascii_lowercase()) {
        return Err(McpError::invalid_params("name must match ^[a-z]+$", None));
    }
    if !(1..=10).contains(&args.count) {
        return Err(McpError::invalid_params(
            "count must be between 1 and 10",
            None,
        ));
    }
    let mode = match args.mode {
        Mode::Fast => "fast",
        Mode::Slow => "slow",
    };
    Ok(text_result(format!(
        "name={} count={} mode={mode}",
        args.name, args.count
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailArgs {
    message: String,
}

fn fail_tool(args: FailArgs) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(args.message)])
}

fn rich() -> CallToolResult {
    let mut link = Resource::new("test://resource/1", "resource-1");
    link.mime_type = Some("text/plain".into());
    let blocks = vec![
        ContentBlock::text("rich result"),
        ContentBlock::Image(ImageContent::new(TINY_PNG, "image/png")),
        ContentBlock::Audio(AudioContent::new(TINY_WAV, "audio/wav")),
        ContentBlock::resource_link(link),
        ContentBlock::resource(ResourceContents::TextResourceContents {
            uri: "test://resource/2".into(),
            mime_type: Some("text/plain".into()),
            text: "embedded resource text".into(),
            meta: None,
        }),
    ];
    let mut result = CallToolResult::success(blocks);
    result.structured_content = Some(json!({
        "kinds": ["text", "image", "audio", "resource_link", "resource"]
    }));
    let mut meta = MetaObject::default();
    meta.0.insert("test/meta".into(), json!("kept"));
    // What a paid tool reports: Baton adds it up per tool (metrics, analytics).
    meta.0.insert(
        "baton/cost".into(),
        json!({"usd": 0.0125, "input_tokens": 120, "output_tokens": 48}),
    );
    result.meta = Some(meta);
    result
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogArgs {
    messages: Vec<String>,
}

// Logging is deprecated by SEP-2577 but still part of every protocol version
// this server speaks, and Baton must pass it through.
#[expect(deprecated)]
async fn log(
    server: &TestServer,
    args: LogArgs,
    ctx: &RequestContext<RoleServer>,
) -> CallToolResult {
    use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam};
    // On 2026-07-28 a request opts in to log messages with its own
    // `_meta` logLevel; without it the server must not send any. Older
    // protocols use the session level from logging/setLevel (default: all).
    let modern = ctx
        .meta
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
    let threshold = if modern {
        ctx.meta.log_level()
    } else {
        Some(server.log_level().unwrap_or(LoggingLevel::Debug))
    };
    let wanted = threshold.is_some_and(|level| level as u8 <= LoggingLevel::Info as u8);
    let mut sent = 0;
    if wanted {
        for message in &args.messages {
            let param = LoggingMessageNotificationParam::new(LoggingLevel::Info, json!(message))
                .with_logger(LOGGER);
            match ctx.peer.notify_logging_message(param).await {
                Ok(()) => sent += 1,
                Err(error) => tracing::warn!(%error, "cannot send log message"),
            }
        }
    }
    text_result(format!("logged {sent}"))
}

fn spawn_child() -> Result<CallToolResult, McpError> {
    // No process_group() call: the child stays in the server's group, which
    // is what Baton's "kill the whole group" tests rely on. All stdio is
    // detached so the child can never write into the MCP stdout channel.
    let mut child = tokio::process::Command::new("sleep")
        .arg("600")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| McpError::internal_error(format!("cannot spawn sleep: {e}"), None))?;
    let pid = child
        .id()
        .ok_or_else(|| McpError::internal_error("spawned child has no pid", None))?;
    // Reap it if it ever exits while the server lives, so no zombie remains.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(structured_result(pid.to_string(), json!({"pid": pid})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddToolArgs {
    name: String,
    #[serde(default)]
    version: u32,
}

async fn add_tool(server: &TestServer, args: AddToolArgs) -> Result<CallToolResult, McpError> {
    let name = args.name;
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(McpError::invalid_params(
            format!("name must match {TOOL_NAME_PATTERN}"),
            None,
        ));
    }
    if is_builtin(&name) {
        return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
            "{name} is a built-in tool"
        ))]));
    }
    if !server.shared().add_dynamic_tool(&name, args.version) {
        return Ok(text_result(format!("tool {name} already exists")));
    }
    server.shared().notify_tool_list_changed().await;
    Ok(text_result(format!("added tool {name}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EffectArgs {
    key: Option<String>,
    #[serde(default)]
    ms: u64,
    #[serde(default = "one")]
    steps: u32,
}

fn one() -> u32 {
    1
}

/// Records one side effect for the call's key (`key`, else the Baton task that makes the
/// call) in `effect-<key>`, before anything else, so that a call counts even when it is
/// cancelled or its caller dies.
fn record_effect(
    server: &TestServer,
    key: Option<String>,
    ctx: &RequestContext<RoleServer>,
) -> Result<String, McpError> {
    let key = key
        .or_else(|| {
            ctx.meta
                .get("baton/parentTask")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            McpError::invalid_params(
                "no key: pass `key`, or call through Baton (_meta[\"baton/parentTask\"])",
                None,
            )
        })?;
    check_id("key", &key)?;
    let state = server
        .shared()
        .state()
        .ok_or_else(|| McpError::invalid_params("effects need --state-dir", None))?;
    state.record(&format!("effect-{key}"));
    Ok(key)
}

async fn effect(
    server: &TestServer,
    args: EffectArgs,
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResult, McpError> {
    check_duration(args.ms)?;
    if !(1..=1000).contains(&args.steps) {
        return Err(McpError::invalid_params(
            "steps must be between 1 and 1000",
            None,
        ));
    }
    let key = record_effect(server, args.key, ctx)?;
    let token = ctx.meta.get_progress_token();
    let start = Instant::now();
    let steps = u64::from(args.steps);
    for step in 1..=steps {
        let deadline = start + Duration::from_millis(args.ms * step / steps);
        tokio::select! {
            () = ctx.ct.cancelled() => return Err(cancelled_error()),
            () = tokio::time::sleep_until(deadline) => {}
        }
        if let Some(token) = &token {
            let progress = ProgressNotificationParam::new(token.clone(), step as f64)
                .with_total(steps as f64)
                .with_message(format!("effect step {step} of {steps}"));
            let _ = ctx.peer.notify_progress(progress).await;
        }
    }
    Ok(structured_result(
        format!("effect {key} done"),
        json!({"key": key, "ms": args.ms}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StubbornArgs {
    key: Option<String>,
    ms: u64,
}

async fn stubborn(
    server: &TestServer,
    args: StubbornArgs,
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResult, McpError> {
    check_duration(args.ms)?;
    let key = record_effect(server, args.key, ctx)?;
    let work = Duration::from_millis(args.ms);
    let ignored = tokio::select! {
        () = ctx.ct.cancelled() => true,
        () = tokio::time::sleep(work) => false,
    };
    if ignored {
        tracing::info!(%key, "stubborn: cancelled, working on regardless");
        tokio::time::sleep(work).await;
    }
    Ok(structured_result(
        format!("stubborn {key} done"),
        json!({"key": key, "ignored_cancellation": ignored}),
    ))
}

/// Names of the tools added at runtime, sorted so `tools/list` is stable.
/// Tools added by `add_tool`, with the version of their definition.
pub type DynamicTools = BTreeMap<String, u32>;
