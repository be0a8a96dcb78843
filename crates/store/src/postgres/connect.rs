//! Connecting: the URL and options, the schema (created if missing, and set as each
//! connection's `search_path`), and the migrations, applied on connect by sqlx's
//! migrator, which holds a PostgreSQL advisory lock while it works, so nodes starting
//! together migrate one at a time.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool};

use super::error::db_err;
use crate::{StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The connect options for `url` (and `schema`, if any), and `host:port/database` for
/// messages (never the URL: it may hold a password).
pub(super) fn connect_options(
    url: &str,
    schema: Option<&str>,
) -> StoreResult<(PgConnectOptions, String)> {
    // The parse error is not shown: it could echo the URL, password included.
    let mut connect = PgConnectOptions::from_str(url).map_err(|_| {
        StoreError::Unavailable(
            "the PostgreSQL URL is invalid (expected postgres://user[:password]@host[:port]/database)"
                .into(),
        )
    })?;
    if connect.get_application_name().is_none() {
        connect = connect.application_name("baton");
    }
    if let Some(schema) = schema {
        check_schema_name(schema)?;
        // Per connection, so migrations and every query land in the schema.
        connect = connect.options([("search_path", schema)]);
    }
    let target = format!(
        "{}:{}/{}",
        connect.get_host(),
        connect.get_port(),
        connect.get_database().unwrap_or(connect.get_username())
    );
    Ok((connect, target))
}

/// Schema names are spliced into SQL (`CREATE SCHEMA`) and into the `search_path`
/// startup option, so only plain identifiers are accepted.
pub(super) fn check_schema_name(schema: &str) -> StoreResult<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Migrate(format!(
            "invalid schema name `{schema}`: use lowercase letters, digits and _"
        )))
    }
}

/// Creates the schema, if one is configured and missing, and applies pending migrations.
pub(super) async fn prepare_schema(pool: &PgPool, schema: Option<&str>) -> StoreResult<()> {
    if let Some(schema) = schema {
        let created = sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .execute(pool)
        .await;
        match created {
            Ok(_) => {}
            // Two nodes creating it at once: one of them loses the race, harmlessly.
            Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("23505")) => {}
            Err(e) => return Err(db_err(e)),
        }
    }
    MIGRATOR.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(e) => match db_err(e) {
            StoreError::Database(m) => StoreError::Migrate(m),
            other => other,
        },
        other => StoreError::Migrate(other.to_string()),
    })
}
