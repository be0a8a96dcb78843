//! Properties of the parsers a request reaches: whatever text arrives, they answer with a
//! value or an error that says what is wrong, never a panic; what they produce prints back
//! to what they read.

use baton_workflow::Definition;
use baton_workflow::reference::Reference;
use proptest::prelude::*;

/// A path segment as a reference writes it: `.name` when the name allows it, `["…"]` with
/// `\` and `"` escaped otherwise, `[n]` for an index.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_-]{1,12}".prop_map(|n| format!(".{n}")),
        any::<u32>().prop_map(|n| format!("[{n}]")),
        ".{0,12}"
            .prop_filter("quoted form only for names a dot cannot carry", |n| {
                n.is_empty()
                    || !n
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
            .prop_map(|n| format!("[\"{}\"]", n.replace('\\', "\\\\").replace('"', "\\\""))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn reference_parsing_never_panics(text in ".{0,80}") {
        if let Err(message) = Reference::parse(&text) {
            prop_assert!(!message.is_empty());
        }
    }

    #[test]
    fn references_print_back_to_what_was_parsed(
        step in "[a-z][a-z0-9_-]{0,15}",
        path in proptest::collection::vec(segment(), 0..6),
    ) {
        let text = format!("steps.{step}.result{}", path.concat());
        let parsed = Reference::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(parsed.step(), Some(step.as_str()));
        prop_assert_eq!(parsed.to_string(), text.clone());
        prop_assert_eq!(Reference::parse(&parsed.to_string()), Ok(parsed));
    }

    #[test]
    fn definition_parsing_never_panics(text in "[ -~\n\t]{0,300}") {
        if let Err(e) = Definition::parse(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn yaml_like_definitions_never_panic(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("name: w".to_string()),
                Just("steps:".to_string()),
                "  - \\{ id: [a-z]{1,3}, tool: [a-z_]{1,8}(, depends_on: \\[[a-z]{1,3}\\])? \\}",
                "    arguments: \\{ [a-z]{1,4}: \"\\$\\{steps\\.[a-z]{1,3}\\.result[.a-z\\[\\]0-9]{0,10}\\}\" \\}",
                "[ a-z:{}\\[\\],\"'&*!|>-]{0,30}",
            ],
            0..12,
        )
    ) {
        let text = lines.join("\n");
        if let Err(e) = Definition::parse(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
