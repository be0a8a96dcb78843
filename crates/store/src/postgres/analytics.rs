//! The analytics pieces of PostgreSQL.

use sqlx::Postgres;

use crate::shared::analytics::AnalyticsSql;

impl AnalyticsSql for Postgres {
    fn param(n: u32) -> String {
        format!("${n}")
    }

    fn text_param(n: u32) -> String {
        format!("${n}::text")
    }

    fn cost_field(field: &str) -> String {
        // A text search first: most results report no cost, and finding that out
        // costs far less than parsing them.
        format!(
            "(CASE WHEN strpos(result::text, 'baton/cost') > 0 \
             AND json_typeof(result -> '_meta' -> 'baton/cost' -> '{field}') = 'number' \
             THEN (result -> '_meta' -> 'baton/cost' ->> '{field}')::float8 END)"
        )
    }

    fn real(expr: &str) -> String {
        format!("({expr})::float8")
    }

    fn int(expr: &str) -> String {
        format!("({expr})::bigint")
    }

    const SNAPSHOT: Option<&'static str> =
        Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
}
