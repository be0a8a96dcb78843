//! Baton processes: `baton serve` and `baton worker` on real ports, and the CLI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn baton_bin() -> &'static str {
    env!("CARGO_BIN_EXE_baton")
}

/// A running `baton serve`.
pub struct Baton {
    child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Baton {
    /// `baton serve --listen 127.0.0.1:0 --data-dir DIR` with extra environment.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Baton {
        let mut cmd = Command::new(baton_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Baton::spawn(cmd, &dir.with_extension("log"))
    }

    /// `baton serve` on `dir/data` whose configuration file (`dir/baton.toml`) is `toml`.
    pub fn start_configured(dir: &Path, toml: &str, env: &[(&str, &str)]) -> Baton {
        let config = dir.join("baton.toml");
        std::fs::write(&config, toml).unwrap();
        let config = config.to_string_lossy().to_string();
        let mut env = env.to_vec();
        env.push(("BATON_CONFIG", &config));
        Baton::start(&dir.join("data"), &env)
    }

    /// `baton worker --data-dir DIR` with extra environment; waits until it is ready.
    /// Its `url` is empty (a worker has no API).
    pub fn start_worker(dir: &Path, env: &[(&str, &str)]) -> Baton {
        let mut cmd = Command::new(baton_bin());
        cmd.args(["worker", "--data-dir"]).arg(dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Baton::spawn_until(cmd, &dir.with_extension("log"), |line| {
            (line.starts_with("baton worker ") && line.ends_with(" ready")).then(String::new)
        })
    }

    /// Spawns `cmd` (which must end up running `baton serve`) and waits for its address.
    pub fn spawn(cmd: Command, log: &Path) -> Baton {
        Baton::spawn_until(cmd, log, |line| {
            line.strip_prefix("baton listening on ")
                .map(|url| url.trim().to_string())
        })
    }

    /// Spawns `cmd` and waits for the stdout line `ready` recognises; its answer is the
    /// node's URL.
    fn spawn_until(mut cmd: Command, log: &Path, ready: impl Fn(&str) -> Option<String>) -> Baton {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        cmd.stdout(Stdio::piped())
            .stderr(log_file)
            .env_remove("BATON_URL")
            .env("BATON_LOG", "info,sqlx=warn");
        let mut child = cmd.spawn().expect("spawn baton");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = ready(&line) {
                        return Baton {
                            child,
                            url,
                            log: log.to_path_buf(),
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "baton did not start; its log:\n{}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    );
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn terminate(mut self) -> ExitStatus {
        self.signal("TERM");
        wait_exit(&mut self.child, Duration::from_secs(60))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Baton {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the `baton` CLI.
pub fn cli(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(baton_bin())
        .args(args)
        .env("BATON_URL", url)
        .output()
        .expect("run baton")
}
