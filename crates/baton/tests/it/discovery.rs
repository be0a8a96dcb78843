//! Finding tools and servers: `tool_search` (MCP) and `GET /v1/tools?q=` over a node's
//! real catalog, and `baton servers add --from-registry` / `baton servers search`
//! against a registry served by the test (the official registry's API and `server.json`
//! format): a remote it resolves to is added and called for real; a package's command
//! line is checked exactly (running it would need npm's registry or cache at test time).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::{
    Api, Baton, HttpTestServer, cli, eventually, free_port, repo_root, testserver_bin, wait_healthy,
};
use crate::mcp_protocol::Mcp;

fn testserver_config() -> String {
    format!(
        "[[servers]]\nname = \"test\"\ncommand = \"{}\"\n",
        testserver_bin().display()
    )
}

#[tokio::test]
async fn tool_search_ranks_the_catalog_over_rest_and_mcp() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start_configured(dir.path(), &testserver_config(), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;

    // Words of the description, none of the name: the test server's `add`.
    let r = api
        .get("/v1/tools?q=sum%20of%20two%20numbers&limit=3")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tools = r.body["tools"].as_array().unwrap();
    assert!(!tools.is_empty() && tools.len() <= 3, "{}", r.body);
    assert_eq!(tools[0]["name"], "test__add", "{}", r.body);
    assert!(tools[0]["score"].as_f64().unwrap() > 0.0);
    assert_eq!(tools[0]["input_schema"]["required"], json!(["a", "b"]));
    let scores: Vec<f64> = tools.iter().map(|t| t["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // A name written another way finds the built-in tool.
    let r = api.get("/v1/tools?q=baton_sleep").await;
    assert_eq!(r.body["tools"][0]["name"], "baton__sleep", "{}", r.body);

    // Nothing matches a word no tool has; the whole catalog without `q` has no scores.
    let r = api.get("/v1/tools?q=zyzzyva").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["tools"], json!([]));
    let all = api.get("/v1/tools").await;
    assert!(all.body["tools"].as_array().unwrap().len() > 5);
    assert!(all.body["tools"][0].get("score").is_none(), "{}", all.body);

    // Bad input is named.
    for (path, says) in [
        ("/v1/tools?q=%20", "query is empty"),
        ("/v1/tools?q=add&limit=0", "limit must be between 1 and 100"),
        (
            "/v1/tools?q=add&limit=101",
            "limit must be between 1 and 100",
        ),
        ("/v1/tools?limit=5", "`limit` goes with `q`"),
    ] {
        let r = api.get(path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.error_message().contains(says), "{path}: {}", r.body);
    }

    // The MCP tool answers the same, with its output described by a schema that uses
    // only JSON Schema's own formats.
    let mcp = Mcp::new(&baton.url);
    let session = mcp.initialize("2025-06-18", json!({})).await;
    let list = mcp.legacy(&session, 1, "tools/list", json!({})).await;
    let tools = list.last()["result"]["tools"].as_array().unwrap().clone();
    let search = tools
        .iter()
        .find(|t| t["name"] == "tool_search")
        .expect("tool_search listed");
    assert_eq!(search["annotations"]["readOnlyHint"], true);
    let listed = serde_json::to_string(&tools).unwrap();
    assert!(
        !listed.contains("\"uint"),
        "non-standard formats in tools/list"
    );
    assert!(
        !listed.contains("\"int32\""),
        "non-standard formats in tools/list"
    );

    let found = mcp
        .call_tool(
            &session,
            2,
            "tool_search",
            json!({"query": "add two numbers", "limit": 2}),
        )
        .await;
    assert_ne!(found["isError"], true, "{found}");
    let s = &found["structuredContent"];
    assert_eq!(s["tools"][0]["name"], "test__add", "{found}");
    assert!(s["catalog_size"].as_u64().unwrap() > 5, "{found}");
    assert!(s["tools"].as_array().unwrap().len() <= 2);

    let bad = mcp
        .call_tool(&session, 3, "tool_search", json!({"query": ""}))
        .await;
    assert_eq!(bad["isError"], true, "{bad}");
    assert!(
        bad["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("query is empty"),
        "{bad}"
    );
}

#[tokio::test]
async fn tool_search_follows_servers_coming_and_going() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(dir.path(), &[]);
    let api = Api::new(&baton.url);
    let r = api.get("/v1/tools?q=add%20numbers").await;
    assert!(
        !r.body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "calc__add"),
        "{}",
        r.body
    );
    let r = api
        .post(
            "/v1/servers",
            json!({"name": "calc", "command": testserver_bin().display().to_string()}),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.body);
    eventually("the new server's tools to be found", LONG, async || {
        api.get("/v1/tools?q=add%20numbers").await.body["tools"][0]["name"] == "calc__add"
    })
    .await;
    let r = api.delete("/v1/servers/calc").await;
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    eventually("the removed server's tools to be gone", LONG, async || {
        !api.get("/v1/tools?q=add%20numbers").await.body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["server"] == "calc")
    })
    .await;
}

const LONG: Duration = Duration::from_secs(60);

/// A registry: `GET /v0/servers/{name}/versions/{version}` and `GET /v0/servers?search=`
/// over the given documents (by name; each is the latest version).
struct Registry {
    url: String,
}

impl Registry {
    async fn start(servers: Vec<Value>) -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let by_name: Arc<BTreeMap<String, Value>> = Arc::new(
            servers
                .into_iter()
                .map(|s| (s["name"].as_str().unwrap().to_string(), s))
                .collect(),
        );
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let by_name = by_name.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (status, body) = answer(&by_name, &path);
                    let text = body.to_string();
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        Registry { url }
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn answer(by_name: &BTreeMap<String, Value>, path: &str) -> (u16, Value) {
    let meta = json!({"io.modelcontextprotocol.registry/official": {"status": "active", "isLatest": true}});
    if let Some(rest) = path.strip_prefix("/v0/servers/") {
        let (name, version) = rest.split_once("/versions/").unwrap_or((rest, "latest"));
        return match by_name.get(&decode(name)) {
            Some(s) if version == "latest" || decode(version) == s["version"] => {
                (200, json!({"server": s, "_meta": meta}))
            }
            _ => (404, json!({"title": "Not Found", "status": 404})),
        };
    }
    if let Some(query) = path.strip_prefix("/v0/servers?") {
        let search = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("search="))
            .map(decode)
            .unwrap_or_default();
        let found: Vec<Value> = by_name
            .values()
            .filter(|s| s["name"].as_str().unwrap().contains(&search))
            .map(|s| json!({"server": s, "_meta": meta}))
            .collect();
        let count = found.len();
        return (200, json!({"servers": found, "metadata": {"count": count}}));
    }
    (404, json!({"title": "Not Found"}))
}

// Multi-threaded: the CLI runs as a blocking child process while the registry answers it
// from this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_added_from_a_registry_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = HttpTestServer::start(free_port(), &dir.path().join("upstream"));
    let everything_version = {
        let pkg: Value = serde_json::from_str(
            &std::fs::read_to_string(repo_root().join("test-support/node/package.json")).unwrap(),
        )
        .unwrap();
        pkg["dependencies"]["@modelcontextprotocol/server-everything"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let registry = Registry::start(vec![
        json!({
            "name": "io.example/remote-tester",
            "description": "The test server, served over Streamable HTTP.",
            "version": "1.0.0",
            "remotes": [
                {"type": "sse", "url": "http://127.0.0.1:1/sse"},
                {"type": "streamable-http", "url": upstream.url,
                 "headers": [{"name": "X-Team", "isRequired": true, "description": "Your team"}]}
            ]
        }),
        json!({
            "name": "io.github.modelcontextprotocol/server-everything",
            "description": "MCP server that exercises all the features of the protocol.",
            "version": everything_version,
            "packages": [{
                "registryType": "npm",
                "identifier": "@modelcontextprotocol/server-everything",
                "version": everything_version,
                "runtimeHint": "npx",
                "transport": {"type": "stdio"},
                "packageArguments": [{"type": "positional", "value": "stdio"}],
                "environmentVariables": [
                    {"name": "EVERYTHING_TOKEN", "isRequired": true, "isSecret": true,
                     "description": "A token it is given"}
                ]
            }]
        }),
    ])
    .await;
    let baton = Baton::start(dir.path(), &[]);
    let api = Api::new(&baton.url);
    let reg = registry.url.as_str();

    // Search.
    let out = cli(
        &baton.url,
        &["servers", "search", "tester", "--registry", reg],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("io.example/remote-tester"), "{stdout}");
    assert!(stdout.contains("remote streamable-http"), "{stdout}");

    // A required header left out is named, and nothing is added.
    let out = cli(
        &baton.url,
        &[
            "servers",
            "add",
            "--from-registry",
            "io.example/remote-tester",
            "--registry",
            reg,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--header X-Team=…"), "{stderr}");
    assert!(stderr.contains("Your team"), "{stderr}");
    assert_eq!(
        api.get("/v1/servers").await.body["servers"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // With it, the remote is added under a name made from the registry's, and its tools
    // run (the SSE remote is passed over: Baton speaks Streamable HTTP).
    let out = cli(
        &baton.url,
        &[
            "servers",
            "add",
            "--from-registry",
            "io.example/remote-tester",
            "--registry",
            reg,
            "--header",
            "X-Team=core",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("server remote-tester added from io.example/remote-tester 1.0.0"),
        "{stdout}"
    );
    let s = api.get("/v1/servers/remote-tester").await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(s.body["transport"], "http", "{}", s.body);
    assert_eq!(s.body["config"]["url"], upstream.url.as_str(), "{}", s.body);
    wait_healthy(&api, "remote-tester").await;
    let id = api
        .submit(json!({"tool": "remote-tester__add", "arguments": {"a": 2, "b": 3}}))
        .await;
    let t = api.wait_final(&id).await;
    assert_eq!(t["status"], "completed", "{t}");
    assert_eq!(t["result"]["structuredContent"]["sum"], 5.0, "{t}");

    // An npm package runs through npx, pinned to the registry's version, with the
    // variables it needs; --dry-run shows it and adds nothing.
    let name = "io.github.modelcontextprotocol/server-everything";
    let out = cli(
        &baton.url,
        &[
            "servers",
            "add",
            "--from-registry",
            name,
            "--registry",
            reg,
            "--env",
            "EVERYTHING_TOKEN=t0k3n",
            "--dry-run",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(spec["name"], "server-everything");
    assert_eq!(spec["command"], "npx");
    assert_eq!(
        spec["args"],
        json!([
            "-y",
            format!("@modelcontextprotocol/server-everything@{everything_version}"),
            "stdio"
        ])
    );
    assert_eq!(spec["env"]["EVERYTHING_TOKEN"], "t0k3n");
    assert!(api.get("/v1/servers/server-everything").await.status == 404);

    // A name the registry does not have: the error says so, with what a search finds.
    let out = cli(
        &baton.url,
        &[
            "servers",
            "add",
            "--from-registry",
            "io.example/tester",
            "--registry",
            reg,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("has no server named `io.example/tester`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("did you mean io.example/remote-tester"),
        "{stderr}"
    );

    // An unreachable registry is named.
    let out = cli(
        &baton.url,
        &[
            "servers",
            "add",
            "--from-registry",
            name,
            "--registry",
            &format!("http://127.0.0.1:{}", free_port()),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot reach the registry"), "{stderr}");
}
