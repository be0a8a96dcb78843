//! Reading a node's SQLite database from outside while the node runs.

use std::path::Path;
use std::process::Command;

/// Runs a query on the SQLite database `db`, read-only, from another process (python3's
/// `sqlite3` module; `scripts/test-env` checks for it). In WAL mode this reads what the
/// node has committed without disturbing it. Returns the rows, fields separated by `|`
/// (`NULL` as an empty field); `params` bind `?` in order.
pub fn sqlite_query(db: &Path, sql: &str, params: &[&str]) -> Vec<String> {
    let script = "import sqlite3, sys\n\
        c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, timeout=10)\n\
        for row in c.execute(sys.argv[2], sys.argv[3:]):\n    \
            print('|'.join('' if v is None else str(v) for v in row))\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(sql)
        .args(params)
        .output()
        .expect("python3 (scripts/test-env checks for it)");
    assert!(
        out.status.success(),
        "sqlite query `{sql}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}
