//! The PostgreSQL server the cluster tests share: a fresh schema per test, and psql.

use std::process::Command;

/// The PostgreSQL server the tests use: `BATON_TEST_PG_URL`, default the local one
/// (`scripts/test-env` starts it). Tests fail, never skip, when it is unreachable.
pub fn pg_url() -> String {
    std::env::var("BATON_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh schema for one test, dropped (with its tables) when the test ends.
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    pub fn create() -> PgSchema {
        let url = pg_url();
        let name = format!("baton_it_{}_{:08x}", std::process::id(), rand_u32());
        psql(&url, &format!("CREATE SCHEMA {name}"));
        PgSchema { url, name }
    }

    /// Environment that points a Baton process at this schema.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BATON_STORE", self.url.clone()),
            ("BATON_STORE__SCHEMA", self.name.clone()),
        ]
    }

    /// Runs one SQL query in the schema; returns the rows, fields separated by `|`.
    pub fn query(&self, sql: &str) -> Vec<String> {
        psql(
            &self.url,
            &format!("SET search_path TO {}; {sql}", self.name),
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Declared before the processes using it, it is dropped after they stopped.
        let _ = Command::new("psql")
            .args([
                &self.url,
                "-q",
                "-c",
                &format!(
                    "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
                    self.name
                ),
            ])
            .output();
    }
}

/// Runs SQL with psql (tuples only, unaligned); panics with psql's message on failure.
pub fn psql(url: &str, sql: &str) -> Vec<String> {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql (installed with PostgreSQL; scripts/test-env checks it)");
    assert!(
        out.status.success(),
        "psql failed on `{sql}`: {}\n(the PostgreSQL tests need a server: run scripts/test-env, or set BATON_TEST_PG_URL)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

pub fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) as u32
}
