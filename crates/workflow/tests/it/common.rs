//! A tool catalog backed by JSON Schemas, like the engine's registry, and the example
//! workflow from the product brief.

use std::collections::BTreeMap;

use baton_workflow::{Definition, Plan, ToolCatalog, closest, validate};
use serde_json::{Value, json};

pub const WEEKLY_REPORT: &str = r#"
name: weekly-report
on_failure: fail_fast
steps:
  - id: fetch
    tool: warehouse__query
    arguments: { sql: "select 1" }
    retry: { max_attempts: 3 }
  - id: charts
    tool: viz__render
    depends_on: [fetch]
    arguments: { rows: "${steps.fetch.result.structuredContent.rows}" }
  - id: summary
    tool: llm__summarize
    depends_on: [fetch]
    arguments: { text: "Summary of: ${steps.fetch.result.content[0].text}" }
  - id: publish
    tool: docs__publish
    depends_on: [charts, summary]
    timeout_ms: 60000
"#;

pub struct Catalog {
    tools: BTreeMap<String, Value>,
}

impl Catalog {
    pub fn new() -> Catalog {
        let any = json!({"type": "object"});
        let tools = [
            (
                "warehouse__query",
                json!({
                    "type": "object",
                    "properties": {"sql": {"type": "string"}},
                    "required": ["sql"]
                }),
            ),
            ("viz__render", any.clone()),
            ("llm__summarize", any.clone()),
            ("docs__publish", any.clone()),
            ("baton__sleep", any),
        ];
        Catalog {
            tools: tools.into_iter().map(|(n, s)| (n.to_string(), s)).collect(),
        }
    }
}

impl ToolCatalog for Catalog {
    fn exists(&self, tool: &str) -> bool {
        self.tools.contains_key(tool)
    }

    fn suggest(&self, tool: &str) -> Option<String> {
        closest(tool, self.tools.keys().map(String::as_str)).map(str::to_string)
    }

    fn check_arguments(&self, tool: &str, arguments: &Value) -> Result<(), String> {
        let validator = jsonschema::validator_for(&self.tools[tool]).map_err(|e| e.to_string())?;
        let errors: Vec<String> = validator
            .iter_errors(arguments)
            .map(|e| format!("at `{}`: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

pub fn plan(yaml: &str) -> Plan {
    let definition = Definition::parse(yaml).expect("test definition parses");
    validate(&definition, &Catalog::new()).unwrap_or_else(|problems| {
        panic!(
            "test definition is valid: {}",
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// The problems of a definition that must parse but not validate, as strings.
pub fn problems(yaml: &str) -> Vec<String> {
    let definition = Definition::parse(yaml).expect("test definition parses");
    match validate(&definition, &Catalog::new()) {
        Ok(_) => panic!("expected problems"),
        Err(problems) => problems.iter().map(|p| p.to_string()).collect(),
    }
}
