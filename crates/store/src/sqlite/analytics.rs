//! The analytics pieces of SQLite.

use sqlx::Sqlite;

use crate::shared::analytics::AnalyticsSql;

impl AnalyticsSql for Sqlite {
    fn param(n: u32) -> String {
        format!("?{n}")
    }

    fn text_param(n: u32) -> String {
        format!("?{n}")
    }

    fn cost_field(field: &str) -> String {
        let path = format!("'$._meta.\"baton/cost\".{field}'");
        // A text search first: most results report no cost, and finding that out
        // costs far less than parsing them.
        format!(
            "(CASE WHEN instr(result, 'baton/cost') > 0 \
             AND json_type(result, {path}) IN ('integer', 'real') \
             THEN json_extract(result, {path}) END)"
        )
    }

    fn real(expr: &str) -> String {
        format!("CAST({expr} AS REAL)")
    }

    fn int(expr: &str) -> String {
        format!("CAST({expr} AS INTEGER)")
    }

    const SNAPSHOT: Option<&'static str> = None;
}
