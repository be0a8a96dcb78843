//! Fresh stores for tests: an SQLite file in a temporary directory, or a fresh schema on
//! the test PostgreSQL server (`BATON_TEST_PG_URL`, default the local server), dropped
//! with everything in it when the guard goes. Tests that need PostgreSQL fail, never
//! skip, when it cannot be reached: CI cannot pass without running them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Connection;

use crate::Store;
use crate::sqlite::{SqliteOptions, SqliteStore};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

/// Whatever must live as long as a fresh store (its directory or schema).
pub enum Guard {
    Dir(tempfile::TempDir),
    #[cfg(feature = "postgres")]
    Schema(Schema),
}

/// A fresh, empty store of `backend`.
pub async fn fresh(backend: Backend) -> (Arc<dyn Store>, Guard) {
    match backend {
        Backend::Sqlite => {
            let (store, dir) = fresh_sqlite().await;
            (store, Guard::Dir(dir))
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let schema = Schema::create().await;
            let store = schema.store(4).await;
            (Arc::new(store), Guard::Schema(schema))
        }
    }
}

/// A fresh SQLite store in a temporary directory.
pub async fn fresh_sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&SqliteOptions::new(dir.path().join("baton.db")))
        .await
        .expect("open SQLite");
    (Arc::new(store), dir)
}

#[cfg(feature = "postgres")]
pub use pg::{Schema, pg_url, shown};

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use crate::postgres::{PostgresOptions, PostgresStore};

    const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    pub fn pg_url() -> String {
        std::env::var("BATON_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
    }

    /// The URL as it may be shown: without its password, if it has one.
    pub fn shown(url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_string();
        };
        match rest.split_once('@') {
            Some((user_info, host)) if user_info.contains(':') => {
                let user = user_info.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{host}")
            }
            _ => url.to_string(),
        }
    }

    /// A test's schema; dropped (with everything in it) when the test ends, passed or not.
    pub struct Schema {
        pub name: String,
        pub url: String,
    }

    impl Schema {
        pub async fn create() -> Schema {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let url = pg_url();
            let name = format!(
                "baton_test_{}_{}_{:08x}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed),
                rand::random::<u32>()
            );
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
                panic!(
                    "cannot reach PostgreSQL at {} ({e}).\n\
                     The postgres store tests need a server: run scripts/test-env (it starts the \
                     local cluster) or point BATON_TEST_PG_URL at one.",
                    shown(&url)
                )
            });
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let _ = conn.close().await;
            Schema { name, url }
        }

        /// A store on this schema. Its connections carry the schema's name as their
        /// `application_name`, so the clean-up can find them.
        pub async fn store(&self, max_connections: u32) -> PostgresStore {
            let sep = if self.url.contains('?') { '&' } else { '?' };
            let url = format!("{}{sep}application_name={}", self.url, self.name);
            let opts = PostgresOptions {
                max_connections,
                acquire_timeout: Duration::from_secs(30),
                schema: Some(self.name.clone()),
            };
            PostgresStore::connect(&url, &opts)
                .await
                .unwrap_or_else(|e| panic!("PostgresStore::connect on {}: {e}", shown(&self.url)))
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let (name, url) = (self.name.clone(), self.url.clone());
            // Drop runs on the test's runtime, which must not be blocked on; a thread with a
            // runtime of its own can.
            let done = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the clean-up")
                    .block_on(drop_schema(&url, &name))
            })
            .join();
            if let Ok(Err(e)) = done {
                eprintln!("could not drop the test schema {}: {e}", self.name);
            }
        }
    }

    async fn drop_schema(url: &str, name: &str) -> Result<(), sqlx::Error> {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let sql = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
        // The store is dropped after this guard, so its pooled connections are still open.
        // Idle, they hold no locks and the DROP goes through; but a test that panicked may
        // have left one inside a transaction: then end the store's connections and drop again.
        sqlx::query("SET lock_timeout = '2s'")
            .execute(&mut conn)
            .await?;
        let dropped = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await;
        if dropped.is_err() {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 AND pid <> pg_backend_pid()",
            )
            .bind(name)
            .execute(&mut conn)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await?;
        }
        conn.close().await
    }
}
