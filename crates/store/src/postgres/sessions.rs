//! The session statements of PostgreSQL.

use sqlx::Postgres;

use crate::shared::sessions::SessionSql;

impl SessionSql for Postgres {
    const PUT_SECRET: &'static str = "INSERT INTO cluster_secrets (name, value, created_at) \
         VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";
    const GET_SECRET: &'static str = "SELECT value FROM cluster_secrets WHERE name = $1";
    const END_SESSION: &'static str = "INSERT INTO ended_sessions (id_hash, ended_at) \
         VALUES ($1, $2) ON CONFLICT (id_hash) DO NOTHING";
    const ENDED_SINCE: &'static str = "SELECT id_hash, ended_at FROM ended_sessions \
         WHERE ended_at >= $1 ORDER BY ended_at";
    const FORGET_ENDED: &'static str = "DELETE FROM ended_sessions WHERE ended_at < $1";
}
