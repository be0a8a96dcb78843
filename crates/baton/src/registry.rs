//! Servers found in an MCP registry (`baton servers add --from-registry`, `baton servers
//! search`).
//!
//! A registry serves `server.json` documents (the official registry's format): a name, a
//! version, and how to run the server, as `packages` (npm, PyPI, OCI or NuGet packages,
//! each with a runtime hint such as `npx`, runtime and package arguments, and the
//! environment variables it reads) or as `remotes` (Streamable HTTP or SSE endpoints
//! with the headers they take). [`resolve`] turns one into the body of `POST
//! /v1/servers`: a command with arguments and environment, or a URL with headers. The
//! values a user must supply (a required variable, header or argument without a default)
//! come from `--env`, `--header` and `--arg`; what is missing is reported all at once.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::client::ClientError;

/// The official registry, when neither `--registry` nor `BATON_REGISTRY_URL` names one.
pub const DEFAULT_REGISTRY: &str = "https://registry.modelcontextprotocol.io";

/// Which way of running a server to prefer when it offers several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Prefer {
    /// A package run locally over stdio (the default when the server has one).
    Package,
    /// A remote endpoint (Streamable HTTP).
    Remote,
}

/// What the user gave for the server's variables.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    pub env: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    /// Package and runtime arguments, by their `name` (named ones, e.g. `--port`) or
    /// `valueHint` (positional ones).
    pub args: BTreeMap<String, String>,
    /// Only packages of this registry type (`npm`, `pypi`, `oci`, `nuget`).
    pub package_type: Option<String>,
    pub prefer: Option<Prefer>,
}

/// A server.json turned into a server Baton can run.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// A Baton server name made from the registry name (`io.github.acme/weather-mcp` →
    /// `weather-mcp`).
    pub name: String,
    /// The registry's name and version.
    pub source: String,
    /// How it runs, in words (`npm package … via npx`).
    pub how: String,
    /// `command`/`args`/`env`, or `url`/`headers`, for `POST /v1/servers`.
    pub spec: Map<String, Value>,
}

/// Fetches a server's `server.json` (`version` or the latest) from a registry.
pub async fn fetch(
    http: &reqwest::Client,
    registry: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Value, ClientError> {
    let base = registry.trim_end_matches('/');
    let url = format!(
        "{base}/v0/servers/{}/versions/{}",
        encode(name),
        encode(version.unwrap_or("latest"))
    );
    let (status, body) = get_json(http, &url).await?;
    if status == 404 {
        let mut message = format!("the registry at {base} has no server named `{name}`");
        if let Some(v) = version {
            message.push_str(&format!(" at version {v}"));
        }
        // Suggest what a search for its last part finds.
        let word = name.rsplit('/').next().unwrap_or(name);
        if let Ok(found) = search(http, registry, word, 5).await {
            let names: Vec<&str> = found
                .iter()
                .filter_map(|s| s["name"].as_str())
                .filter(|n| *n != name)
                .collect();
            if !names.is_empty() {
                message.push_str(&format!("; did you mean {}?", names.join(", ")));
            }
        }
        return Err(ClientError::Usage(message));
    }
    if !(200..300).contains(&status) {
        return Err(ClientError::Usage(format!(
            "the registry at {base} answered HTTP {status} for `{name}`"
        )));
    }
    // The registry wraps the document with its own metadata (`{server, _meta}`);
    // older registries answer with the document itself.
    let server = match body.get("server") {
        Some(s @ Value::Object(_)) => s.clone(),
        _ => body,
    };
    if !server.is_object() || server.get("name").is_none() {
        return Err(ClientError::Usage(format!(
            "the registry at {base} answered for `{name}` with something that is not a server.json"
        )));
    }
    Ok(server)
}

/// Servers whose name matches `query` (the registry's own search), latest versions.
pub async fn search(
    http: &reqwest::Client,
    registry: &str,
    query: &str,
    limit: u32,
) -> Result<Vec<Value>, ClientError> {
    let base = registry.trim_end_matches('/');
    let url = format!(
        "{base}/v0/servers?search={}&version=latest&limit={limit}",
        encode(query)
    );
    let (status, body) = get_json(http, &url).await?;
    if !(200..300).contains(&status) {
        return Err(ClientError::Usage(format!(
            "the registry at {base} answered HTTP {status} to a search"
        )));
    }
    Ok(body["servers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| match e.get("server") {
                    Some(s @ Value::Object(_)) => s.clone(),
                    _ => e.clone(),
                })
                .collect()
        })
        .unwrap_or_default())
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<(u16, Value), ClientError> {
    let unreachable = |e: reqwest::Error| {
        ClientError::Usage(format!(
            "cannot reach the registry ({url}): {e}; set --registry or BATON_REGISTRY_URL"
        ))
    };
    let resp = http
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(unreachable)?;
    let body = if status == 404 {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Usage(format!("the registry's answer to {url} is not JSON: {e}"))
        })?
    };
    Ok((status, body))
}

/// Percent-encodes a path segment or query value (server names hold `/`).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A Baton server name (`[a-z0-9-]+`) from a registry name.
pub fn local_name(registry_name: &str) -> String {
    let last = registry_name.rsplit('/').next().unwrap_or(registry_name);
    let mut out = String::new();
    for c in last.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "server".to_string()
    } else {
        out
    }
}

/// Turns a `server.json` into a server spec, taking the variables from `inputs`.
pub fn resolve(server: &Value, inputs: &Inputs) -> Result<Resolved, String> {
    let registry_name = server["name"].as_str().unwrap_or("(unnamed)");
    let version = server["version"].as_str().unwrap_or("?");
    let packages: Vec<&Value> = server["packages"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let remotes: Vec<&Value> = server["remotes"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if packages.is_empty() && remotes.is_empty() {
        return Err(format!(
            "`{registry_name}` lists neither packages nor remotes: there is nothing to run"
        ));
    }
    // Why each candidate was passed over, for the error when none fits.
    let mut passed_over = Vec::new();
    let choice = match inputs.prefer {
        Some(Prefer::Remote) => match remote_spec(&remotes, inputs, &mut passed_over) {
            Some(r) => Some(r),
            None => first_package(&packages, inputs, &mut passed_over),
        },
        _ => match first_package(&packages, inputs, &mut passed_over) {
            Some(r) => Some(r),
            None => remote_spec(&remotes, inputs, &mut passed_over),
        },
    };
    let (how, spec) = match choice {
        Some(r) => r?,
        None => {
            return Err(format!(
                "none of the ways `{registry_name}` offers can run here: {}",
                passed_over.join("; ")
            ));
        }
    };
    Ok(Resolved {
        name: local_name(registry_name),
        source: format!("{registry_name} {version}"),
        how,
        spec,
    })
}

/// How a server runs, in words, and its spec for `POST /v1/servers`.
type Spec = (String, Map<String, Value>);
type Choice = Result<Spec, String>;

/// The first package that runs here (of `--package-type`, when given).
fn first_package(
    packages: &[&Value],
    inputs: &Inputs,
    passed_over: &mut Vec<String>,
) -> Option<Choice> {
    for p in packages {
        let kind = p["registryType"].as_str().unwrap_or("");
        if inputs.package_type.as_deref().is_some_and(|t| t != kind) {
            passed_over.push(format!("{kind} package (not --package-type)"));
            continue;
        }
        match package_spec(p, inputs) {
            Ok(Some(s)) => return Some(Ok(s)),
            Ok(None) => passed_over.push(format!(
                "{kind} package {}: {}",
                p["identifier"].as_str().unwrap_or("?"),
                unsupported_package(p)
            )),
            Err(e) => return Some(Err(e)),
        }
    }
    None
}

fn unsupported_package(p: &Value) -> String {
    let transport = p["transport"]["type"].as_str().unwrap_or("stdio");
    match p["registryType"].as_str().unwrap_or("") {
        _ if transport != "stdio" => format!(
            "it serves {transport} from a process of its own; start it yourself and add it with --url"
        ),
        "mcpb" => "an MCP bundle (download and unpack it, then add its command)".to_string(),
        "" => "no registryType".to_string(),
        other => format!("Baton does not know how to run {other} packages"),
    }
}

/// A stdio package as a command line. `Ok(None)`: a package this cannot run.
fn package_spec(p: &Value, inputs: &Inputs) -> Result<Option<Spec>, String> {
    if p["transport"]["type"].as_str().unwrap_or("stdio") != "stdio" {
        return Ok(None);
    }
    let kind = p["registryType"].as_str().unwrap_or("");
    let id = p["identifier"]
        .as_str()
        .ok_or_else(|| format!("a {kind} package without an identifier"))?;
    let version = p["version"].as_str().filter(|v| !v.is_empty());
    let (default_runtime, package_ref) = match kind {
        "npm" => (
            "npx",
            version.map_or(id.to_string(), |v| format!("{id}@{v}")),
        ),
        "pypi" => (
            "uvx",
            version.map_or(id.to_string(), |v| format!("{id}=={v}")),
        ),
        "oci" => (
            "docker",
            match version {
                Some(v) if !id.contains(':') && !id.contains('@') => format!("{id}:{v}"),
                _ => id.to_string(),
            },
        ),
        "nuget" => (
            "dnx",
            version.map_or(id.to_string(), |v| format!("{id}@{v}")),
        ),
        _ => return Ok(None),
    };
    let runtime = p["runtimeHint"].as_str().unwrap_or(default_runtime);
    let mut missing = Vec::new();
    let mut args = render_args(&p["runtimeArguments"], inputs, &mut missing);
    let env = environment(&p["environmentVariables"], inputs, &mut missing);
    match runtime {
        // Never stop at npx's "Ok to proceed?" prompt: nobody is there to answer it.
        "npx" if !args.iter().any(|a| a == "-y" || a == "--yes") => args.insert(0, "-y".into()),
        // A container needs stdin open, and goes when its server exits.
        "docker" | "podman" if args.is_empty() => {
            args.extend(["run", "-i", "--rm"].map(String::from));
        }
        _ => {}
    }
    if matches!(runtime, "docker" | "podman") {
        // The container sees only the variables it is told to take from its runner.
        for k in env.keys() {
            args.push("-e".into());
            args.push(k.clone());
        }
    }
    args.push(package_ref.clone());
    if runtime == "dnx" && !args.iter().any(|a| a == "--yes") {
        args.push("--yes".into());
    }
    args.extend(render_args(&p["packageArguments"], inputs, &mut missing));
    if !missing.is_empty() {
        return Err(missing_message(&missing));
    }
    let mut spec = Map::new();
    spec.insert("command".into(), json!(runtime));
    spec.insert("args".into(), json!(args));
    if !env.is_empty() {
        spec.insert("env".into(), json!(env));
    }
    Ok(Some((
        format!("{kind} package {package_ref} via {runtime}"),
        spec,
    )))
}

/// The first remote Baton can speak to, with its headers.
fn remote_spec(
    remotes: &[&Value],
    inputs: &Inputs,
    passed_over: &mut Vec<String>,
) -> Option<Choice> {
    for r in remotes {
        let kind = r["type"].as_str().unwrap_or("");
        let Some(url) = r["url"].as_str() else {
            passed_over.push(format!("{kind} remote without a url"));
            continue;
        };
        if kind != "streamable-http" {
            passed_over.push(format!(
                "{kind} remote {url} (Baton speaks Streamable HTTP to servers, not {kind})"
            ));
            continue;
        }
        let mut missing = Vec::new();
        let mut headers = BTreeMap::new();
        for h in r["headers"].as_array().into_iter().flatten() {
            let Some(name) = h["name"].as_str() else {
                continue;
            };
            match inputs.headers.get(name).cloned().or_else(|| fixed_value(h)) {
                Some(v) => {
                    headers.insert(name.to_string(), v);
                }
                None if h["isRequired"].as_bool() == Some(true) => {
                    missing.push(Missing::header(name, h));
                }
                None => {}
            }
        }
        if !missing.is_empty() {
            return Some(Err(missing_message(&missing)));
        }
        let mut spec = Map::new();
        spec.insert("url".into(), json!(url));
        if !headers.is_empty() {
            spec.insert("headers".into(), json!(headers));
        }
        return Some(Ok((format!("remote {url} (Streamable HTTP)"), spec)));
    }
    None
}

/// A value the document fixes (`value`, else `default`), with `{variables}` filled in
/// from their own defaults. `None` when the user must supply it.
fn fixed_value(input: &Value) -> Option<String> {
    let raw = input["value"]
        .as_str()
        .or_else(|| input["default"].as_str())?;
    let mut out = raw.to_string();
    if let Some(vars) = input["variables"].as_object() {
        for (k, v) in vars {
            let value = v["value"].as_str().or_else(|| v["default"].as_str())?;
            out = out.replace(&format!("{{{k}}}"), value);
        }
    }
    Some(out)
}

fn render_args(list: &Value, inputs: &Inputs, missing: &mut Vec<Missing>) -> Vec<String> {
    let mut out = Vec::new();
    for a in list.as_array().into_iter().flatten() {
        let named = a["type"].as_str() == Some("named");
        let key = if named {
            a["name"].as_str()
        } else {
            a["valueHint"].as_str().or_else(|| a["name"].as_str())
        };
        let given = key.and_then(|k| inputs.args.get(k).cloned());
        let value = given.or_else(|| fixed_value(a));
        let required = a["isRequired"].as_bool() == Some(true);
        match (named, value) {
            (true, Some(v)) => {
                out.push(a["name"].as_str().unwrap_or_default().to_string());
                if !v.is_empty() {
                    out.push(v);
                }
            }
            // A flag with no value (`--verbose`) that the document asks for.
            (true, None)
                if required && a.get("value").is_none() && a.get("valueHint").is_none() =>
            {
                out.push(a["name"].as_str().unwrap_or_default().to_string());
            }
            (false, Some(v)) => out.push(v),
            (_, None) if required => missing.push(Missing::argument(key.unwrap_or("?"), a)),
            (_, None) => {}
        }
    }
    out
}

fn environment(
    list: &Value,
    inputs: &Inputs,
    missing: &mut Vec<Missing>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for v in list.as_array().into_iter().flatten() {
        let Some(name) = v["name"].as_str() else {
            continue;
        };
        match inputs.env.get(name).cloned().or_else(|| fixed_value(v)) {
            Some(value) => {
                env.insert(name.to_string(), value);
            }
            None if v["isRequired"].as_bool() == Some(true) => {
                missing.push(Missing::env(name, v));
            }
            None => {}
        }
    }
    // Variables the user gave that the document does not list are passed on too.
    for (k, v) in &inputs.env {
        env.entry(k.clone()).or_insert_with(|| v.clone());
    }
    env
}

/// A value the user must supply.
#[derive(Debug)]
struct Missing {
    flag: &'static str,
    name: String,
    description: Option<String>,
    secret: bool,
}

impl Missing {
    fn of(flag: &'static str, name: &str, doc: &Value) -> Self {
        Missing {
            flag,
            name: name.to_string(),
            description: doc["description"].as_str().map(str::to_string),
            secret: doc["isSecret"].as_bool() == Some(true),
        }
    }
    fn env(name: &str, doc: &Value) -> Self {
        Missing::of("--env", name, doc)
    }
    fn header(name: &str, doc: &Value) -> Self {
        Missing::of("--header", name, doc)
    }
    fn argument(name: &str, doc: &Value) -> Self {
        Missing::of("--arg", name, doc)
    }
}

fn missing_message(missing: &[Missing]) -> String {
    let lines: Vec<String> = missing
        .iter()
        .map(|m| {
            let mut line = format!("  {} {}=…", m.flag, m.name);
            if let Some(d) = &m.description {
                line.push_str(&format!("   {d}"));
            }
            if m.secret {
                line.push_str(" (secret: stored encrypted, never shown)");
            }
            line
        })
        .collect();
    format!(
        "the server needs values it has no default for; give them with:\n{}",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npm_server() -> Value {
        json!({
            "name": "io.github.acme/weather-mcp",
            "version": "1.4.0",
            "packages": [{
                "registryType": "npm",
                "identifier": "@acme/weather-mcp",
                "version": "1.4.0",
                "runtimeHint": "npx",
                "transport": {"type": "stdio"},
                "packageArguments": [
                    {"type": "positional", "value": "stdio"},
                    {"type": "named", "name": "--units", "default": "metric"},
                    {"type": "named", "name": "--region", "valueHint": "region", "isRequired": false}
                ],
                "environmentVariables": [
                    {"name": "WEATHER_API_KEY", "isRequired": true, "isSecret": true, "description": "Your API key"},
                    {"name": "WEATHER_CACHE", "default": "on"}
                ]
            }],
            "remotes": [{
                "type": "streamable-http",
                "url": "https://weather.example/mcp",
                "headers": [{"name": "Authorization", "isRequired": true, "isSecret": true}]
            }]
        })
    }

    fn inputs(env: &[(&str, &str)]) -> Inputs {
        Inputs {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn an_npm_package_runs_through_npx_with_its_arguments_and_environment() {
        let r = resolve(&npm_server(), &inputs(&[("WEATHER_API_KEY", "k")])).unwrap();
        assert_eq!(r.name, "weather-mcp");
        assert_eq!(r.source, "io.github.acme/weather-mcp 1.4.0");
        assert_eq!(r.spec["command"], "npx");
        assert_eq!(
            r.spec["args"],
            json!([
                "-y",
                "@acme/weather-mcp@1.4.0",
                "stdio",
                "--units",
                "metric"
            ])
        );
        assert_eq!(
            r.spec["env"],
            json!({"WEATHER_API_KEY": "k", "WEATHER_CACHE": "on"})
        );
    }

    #[test]
    fn everything_missing_is_named_at_once() {
        let e = resolve(&npm_server(), &Inputs::default()).unwrap_err();
        assert!(e.contains("--env WEATHER_API_KEY=…"), "{e}");
        assert!(e.contains("Your API key"), "{e}");
        assert!(e.contains("secret"), "{e}");
    }

    #[test]
    fn a_remote_is_taken_when_preferred_with_its_headers() {
        let mut i = Inputs {
            prefer: Some(Prefer::Remote),
            ..Default::default()
        };
        let e = resolve(&npm_server(), &i).unwrap_err();
        assert!(e.contains("--header Authorization=…"), "{e}");
        i.headers.insert("Authorization".into(), "Bearer t".into());
        let r = resolve(&npm_server(), &i).unwrap();
        assert_eq!(r.spec["url"], "https://weather.example/mcp");
        assert_eq!(r.spec["headers"], json!({"Authorization": "Bearer t"}));
        assert!(r.spec.get("command").is_none());
    }

    #[test]
    fn pypi_oci_and_arguments_given_by_hint() {
        let server = json!({
            "name": "com.example/Data Tools",
            "version": "2.0.0",
            "packages": [
                {"registryType": "pypi", "identifier": "data-tools", "version": "2.0.0",
                 "transport": {"type": "stdio"},
                 "packageArguments": [{"type": "positional", "valueHint": "directory", "isRequired": true}]},
                {"registryType": "oci", "identifier": "example/data-tools", "version": "2.0.0",
                 "transport": {"type": "stdio"},
                 "environmentVariables": [{"name": "TOKEN", "value": "{t}", "variables": {"t": {"default": "abc"}}}]}
            ]
        });
        let mut i = inputs(&[]);
        i.args.insert("directory".into(), "/srv/data".into());
        let r = resolve(&server, &i).unwrap();
        assert_eq!(r.name, "data-tools");
        assert_eq!(r.spec["command"], "uvx");
        assert_eq!(r.spec["args"], json!(["data-tools==2.0.0", "/srv/data"]));
        i.package_type = Some("oci".into());
        let r = resolve(&server, &i).unwrap();
        assert_eq!(r.spec["command"], "docker");
        assert_eq!(
            r.spec["args"],
            json!([
                "run",
                "-i",
                "--rm",
                "-e",
                "TOKEN",
                "example/data-tools:2.0.0"
            ])
        );
        assert_eq!(r.spec["env"], json!({"TOKEN": "abc"}));
    }

    #[test]
    fn what_cannot_run_here_says_why() {
        let server = json!({
            "name": "x/y", "version": "1",
            "packages": [{"registryType": "mcpb", "identifier": "https://x/y.mcpb", "transport": {"type": "stdio"}}],
            "remotes": [{"type": "sse", "url": "https://x/sse"}]
        });
        let e = resolve(&server, &Inputs::default()).unwrap_err();
        assert!(e.contains("MCP bundle"), "{e}");
        let i = Inputs {
            prefer: Some(Prefer::Remote),
            ..Default::default()
        };
        let e = resolve(&server, &i).unwrap_err();
        assert!(e.contains("not sse"), "{e}");
        let e = resolve(&json!({"name": "x/z", "version": "1"}), &Inputs::default()).unwrap_err();
        assert!(e.contains("nothing to run"), "{e}");
    }

    #[test]
    fn names_and_encoding() {
        assert_eq!(local_name("io.github.acme/Weather_MCP"), "weather-mcp");
        assert_eq!(local_name("///"), "server");
        assert_eq!(encode("io.github.acme/weather"), "io.github.acme%2Fweather");
    }
}
