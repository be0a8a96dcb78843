//! The statements of PostgreSQL for MCP servers registered at runtime.

use sqlx::Postgres;

use crate::shared::servers::ServerSql;

impl ServerSql for Postgres {
    const LIST_SERVERS: &'static str =
        "SELECT name, config, created_at, updated_at FROM servers ORDER BY name";

    const PUT_SERVER: &'static str = "INSERT INTO servers (name, config, created_at, updated_at) \
         VALUES ($1, $2::json, $3, $3) \
         ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at";

    const DELETE_SERVER: &'static str = "DELETE FROM servers WHERE name = $1";
}
