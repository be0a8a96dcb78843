//! The statements of SQLite for API keys and the audit log.

use sqlx::Sqlite;

use crate::shared::keys::{AuditSql, KeySql};

impl KeySql for Sqlite {
    const INSERT_KEY: &'static str = "INSERT INTO api_keys (key_id, name, principal, scopes, \
         secret_hash, previous_hash, previous_until, rate_limit, max_active, created_at, \
         expires_at, revoked_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

    const GET_KEY: &'static str = "SELECT * FROM api_keys WHERE key_id = ?1";

    const KEYS_SINCE: &'static str =
        "SELECT * FROM api_keys WHERE updated_at >= ?1 ORDER BY updated_at, key_id";

    const REVOKE_KEY: &'static str = "UPDATE api_keys SET revoked_at = ?2, \
         updated_at = MAX(?2, updated_at + 1) \
         WHERE key_id = ?1 AND revoked_at IS NULL";

    const ROTATE_KEY: &'static str = "UPDATE api_keys SET previous_hash = secret_hash, \
         secret_hash = ?2, previous_until = ?3, \
         updated_at = MAX(?4, updated_at + 1) \
         WHERE key_id = ?1 AND revoked_at IS NULL";
}

impl AuditSql for Sqlite {
    const PURGE_AUDIT: &'static str = "DELETE FROM audit_log WHERE seq IN \
         (SELECT seq FROM audit_log WHERE at < ?1 ORDER BY seq LIMIT ?2)";

    const JSON_CAST: &'static str = "";
}
