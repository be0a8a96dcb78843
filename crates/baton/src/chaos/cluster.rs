//! The processes under test: `baton serve` nodes and `baton worker`s started from the
//! current executable, each with its own data directory and fixed port (so a restart
//! comes back where clients expect it), and for PostgreSQL a private cluster made with
//! `initdb` and driven with `pg_ctl`, so restarting it disturbs nobody else.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Node,
    Worker,
}

/// One Baton process; it keeps its name, data directory, port and environment across
/// restarts.
pub struct Proc {
    pub name: String,
    pub role: Role,
    pub port: Option<u16>,
    data_dir: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub paused: bool,
}

impl Proc {
    pub fn url(&self) -> Option<String> {
        self.port.map(|p| format!("http://127.0.0.1:{p}"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Starts the process and waits (up to a minute) for the line saying it is ready.
    pub async fn start(&mut self, exe: &Path) -> anyhow::Result<()> {
        let mut last = None;
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            match self.try_start(exe).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("an error"))
    }

    async fn try_start(&mut self, exe: &Path) -> anyhow::Result<()> {
        let mut cmd = Command::new(exe);
        match self.role {
            Role::Node => {
                let listen = format!("127.0.0.1:{}", self.port.expect("a node has a port"));
                cmd.args(["serve", "--listen", &listen, "--data-dir"]);
            }
            Role::Worker => {
                cmd.args(["worker", "--data-dir"]);
            }
        }
        cmd.arg(&self.data_dir);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("BATON_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let role = self.role;
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                let ok = match role {
                    Role::Node => line.starts_with("baton listening on "),
                    Role::Worker => line.starts_with("baton worker ") && line.ends_with(" ready"),
                };
                if ok {
                    return true;
                }
            }
            false
        })
        .await;
        if ready != Ok(true) {
            let _ = child.start_kill();
            let _ = child.wait().await;
            bail!("{} did not start (see {})", self.name, self.log.display());
        }
        // Keep reading, so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// Whether the process is running (a stopped one counts as running).
    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// `kill -9`: no chance to clean up.
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
        self.paused = false;
    }

    pub async fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            bail!("{} is not running", self.name)
        };
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .await?
            .success();
        anyhow::ensure!(ok, "kill -{sig} {pid} ({}) failed", self.name);
        Ok(())
    }

    /// SIGTERM and wait for a graceful exit (SIGKILL after `limit`).
    pub async fn terminate(&mut self, limit: Duration) -> bool {
        if self.paused {
            let _ = self.signal("CONT").await;
            self.paused = false;
        }
        let Some(mut c) = self.child.take() else {
            return true;
        };
        if let Some(pid) = c.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        match tokio::time::timeout(limit, c.wait()).await {
            Ok(_) => true,
            Err(_) => {
                let _ = c.start_kill();
                let _ = c.wait().await;
                false
            }
        }
    }
}

/// A PostgreSQL cluster of the run's own.
pub struct PrivatePg {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    _tmp: Option<tempfile::TempDir>,
}

impl PrivatePg {
    /// `initdb` in a fresh directory (kept if `keep`), then `pg_ctl start` on a free port.
    pub async fn start(bin_dir: Option<&Path>, keep: bool) -> anyhow::Result<PrivatePg> {
        let bin = match bin_dir {
            Some(b) => b.to_path_buf(),
            None => pg_bindir()?,
        };
        let tmp = tempfile::Builder::new()
            .prefix("baton-chaos-pg-")
            .tempdir()?;
        let dir = tmp.path().to_path_buf();
        let tmp = if keep {
            let _ = tmp.keep();
            None
        } else {
            Some(tmp)
        };
        std::fs::create_dir(dir.join("data"))?;
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .await?
                .success();
            anyhow::ensure!(ok, "chown of {} to postgres failed", dir.display());
        }
        let data = dir.join("data");
        let out = pg_cmd(
            &bin,
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
            ],
        )
        .output()
        .await
        .context("running initdb")?;
        anyhow::ensure!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PrivatePg {
            dir,
            bin,
            port: free_port()?,
            _tmp: tmp,
        };
        pg.ctl(&["start"]).await?;
        Ok(pg)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `pg_ctl … ACTION` (with `-m MODE` where given), waiting for it to finish.
    pub async fn ctl(&self, action: &[&str]) -> anyhow::Result<()> {
        let data = self.dir.join("data");
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("pg.log");
        let mut args = vec![
            "-D".to_string(),
            data.to_string_lossy().to_string(),
            "-o".to_string(),
            opts,
            "-l".to_string(),
            log.to_string_lossy().to_string(),
            "-w".to_string(),
            "-t".to_string(),
            "60".to_string(),
        ];
        args.extend(action.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = pg_cmd(&self.bin, "pg_ctl", &args)
            .output()
            .await
            .context("running pg_ctl")?;
        anyhow::ensure!(
            out.status.success(),
            "pg_ctl {}: {}{}",
            action.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Stops the server and moves its directory to `to` (a kept run's `postgres/`); if
    /// it cannot be moved, it stays where it is. Returns where it is.
    pub async fn stop_and_keep(mut self, to: &Path) -> PathBuf {
        let _ = self.ctl(&["-m", "fast", "stop"]).await;
        if std::fs::rename(&self.dir, to).is_ok() {
            self.dir = to.to_path_buf();
        }
        self.dir.clone()
    }

    /// Starts the server if it is not running.
    pub async fn ensure_up(&self) -> anyhow::Result<()> {
        let data = self.dir.join("data");
        let status = pg_cmd(
            &self.bin,
            "pg_ctl",
            &["-D", &data.to_string_lossy(), "status"],
        )
        .output()
        .await?;
        if !status.status.success() {
            self.ctl(&["start"]).await?;
        }
        Ok(())
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if !data.join("postmaster.pid").exists() {
            return;
        }
        let mut cmd = std::process::Command::new(if is_root() {
            PathBuf::from("runuser")
        } else {
            self.bin.join("pg_ctl")
        });
        if is_root() {
            cmd.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
        }
        let _ = cmd
            .args(["-D", &data.to_string_lossy(), "-m", "immediate", "stop"])
            .output();
    }
}

/// The directory of PostgreSQL's server programs: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`, else wherever `initdb` is on the PATH.
fn pg_bindir() -> anyhow::Result<PathBuf> {
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").exists())
        .collect();
    dirs.sort();
    if let Some(d) = dirs.pop() {
        return Ok(d);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    bail!("PostgreSQL's server programs (initdb, pg_ctl) were not found; give --pg-bin-dir")
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// PostgreSQL refuses to run as root; as root, its programs run as `postgres`.
fn pg_cmd(bin: &Path, program: &str, args: &[&str]) -> Command {
    let path = bin.join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path).args(args);
        c
    } else {
        let mut c = Command::new(path);
        c.args(args);
        c
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// What the processes of a run share.
pub struct Setup<'a> {
    pub dir: &'a Path,
    pub testserver: &'a Path,
    pub store_url: Option<String>,
    pub schema: Option<String>,
    pub lease: Duration,
    pub nodes: usize,
    pub workers: usize,
}

/// The name under which the test server is configured; its tools are `t__<tool>`.
pub const SERVER: &str = "t";

/// The test server's switch for its chaos tools (`effect`, `stubborn`).
const TESTSERVER_CHAOS_TOOLS: &str = "BATON_TESTSERVER_CHAOS_TOOLS";

/// Writes the config file and describes every process (nothing is started yet).
pub fn plan(setup: &Setup) -> anyhow::Result<Vec<Proc>> {
    let state = setup.dir.join("state");
    std::fs::create_dir_all(&state)?;
    let config = setup.dir.join("baton.toml");
    std::fs::write(
        &config,
        format!(
            "[[servers]]\nname = \"{SERVER}\"\ncommand = {:?}\nargs = [\"--state-dir\", {:?}]\n\
             env = {{ {} = \"1\" }}\nmax_concurrency = 64\n",
            setup.testserver.to_string_lossy(),
            state.to_string_lossy(),
            TESTSERVER_CHAOS_TOOLS
        ),
    )?;
    let lease = humantime::format_duration(setup.lease).to_string();
    let mut base: Vec<(String, String)> = [
        ("BATON_CONFIG", config.to_string_lossy().to_string()),
        ("BATON_WORKERS__LEASE", lease),
        ("BATON_WORKERS__SHUTDOWN_GRACE", "3s".into()),
        ("BATON_WORKERS__POLL_INTERVAL", "200ms".into()),
        ("BATON_TASKS__RETRY_BASE_DELAY", "100ms".into()),
        ("BATON_TASKS__RETRY_MAX_DELAY", "1s".into()),
        ("BATON_TASKS__MAX_ACTIVE", "1000000".into()),
        ("BATON_UPSTREAM__HEALTH_INTERVAL", "1s".into()),
        ("BATON_UPSTREAM__OPEN_FOR", "1s".into()),
        (
            "BATON_LOG",
            "info,sqlx=warn,tower_http=warn,rmcp=warn".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(url) = &setup.store_url {
        base.push(("BATON_STORE".into(), url.clone()));
        base.push(("BATON_STORE__ACQUIRE_TIMEOUT".into(), "2s".into()));
        base.push(("BATON_STORE__MAX_CONNECTIONS".into(), "8".into()));
    }
    if let Some(schema) = &setup.schema {
        base.push(("BATON_STORE__SCHEMA".into(), schema.clone()));
    }
    let mut procs = Vec::new();
    let mut add = |name: String, role: Role, workers: usize| -> anyhow::Result<()> {
        let mut env = base.clone();
        env.push(("BATON_NODE_ID".into(), name.clone()));
        env.push(("BATON_WORKERS__CONCURRENCY".into(), workers.to_string()));
        procs.push(Proc {
            port: (role == Role::Node).then(free_port).transpose()?,
            data_dir: setup.dir.join(&name),
            log: setup.dir.join(format!("{name}.log")),
            name,
            role,
            env,
            child: None,
            paused: false,
        });
        Ok(())
    };
    for i in 1..=setup.nodes.max(1) {
        add(format!("node-{i}"), Role::Node, 8)?;
    }
    for i in 1..=setup.workers {
        add(format!("worker-{i}"), Role::Worker, 8)?;
    }
    Ok(procs)
}

/// Every process of the run, and the private PostgreSQL server if any.
pub struct Cluster {
    pub exe: PathBuf,
    pub procs: Vec<Proc>,
    pub pg: Option<PrivatePg>,
}

impl Cluster {
    /// Starts every process (nodes first, so they migrate the store).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        for p in &mut self.procs {
            p.start(&self.exe).await?;
        }
        Ok(())
    }

    /// `(name, URL)` of every node with an API.
    pub fn api(&self) -> Vec<(String, String)> {
        self.procs
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.url()?)))
            .collect()
    }

    /// Undoes every fault: PostgreSQL up, stopped processes continued, dead ones
    /// restarted.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        if let Some(pg) = &self.pg {
            pg.ensure_up().await?;
        }
        for p in &mut self.procs {
            if p.paused {
                p.signal("CONT").await?;
                p.paused = false;
            }
            if !p.alive() {
                p.start(&self.exe).await?;
            }
        }
        Ok(())
    }

    /// Stops every process cleanly (SIGTERM, then SIGKILL after 30 s); returns the
    /// names of those that had to be killed.
    pub async fn stop(&mut self) -> Vec<String> {
        let mut killed = Vec::new();
        for p in &mut self.procs {
            if !p.terminate(Duration::from_secs(30)).await {
                killed.push(p.name.clone());
            }
        }
        killed
    }
}
