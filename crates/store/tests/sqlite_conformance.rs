//! The store conformance suite against a real SQLite file.

use baton_store::Store;
use baton_store::sqlite::{SqliteOptions, SqliteStore};

async fn fresh_sqlite_store() -> (Box<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteOptions::new(dir.path().join("baton.db")))
        .await
        .unwrap();
    (Box::new(store), dir)
}

baton_store::store_test_suite!(fresh_sqlite_store);
