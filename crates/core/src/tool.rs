//! Qualified tool names: `server` + separator + `tool` (`baton__sleep`).

/// The default separator between a server (or group) name and a tool name.
pub const DEFAULT_SEPARATOR: &str = "__";

/// The server name of Baton's built-in tools.
pub const BUILTIN_SERVER: &str = "baton";

/// Splits a qualified name at the first separator: `("everything", "echo")`.
pub fn split_qualified<'a>(name: &'a str, separator: &str) -> Option<(&'a str, &'a str)> {
    let (server, tool) = name.split_once(separator)?;
    (!server.is_empty() && !tool.is_empty()).then_some((server, tool))
}

pub fn qualify(server: &str, tool: &str, separator: &str) -> String {
    let mut s = String::with_capacity(server.len() + separator.len() + tool.len());
    s.push_str(server);
    s.push_str(separator);
    s.push_str(tool);
    s
}

/// Server, group and queue names: `[a-z0-9-]+` (queues also allow `_` and `.`), at most
/// 64 characters. Returns why a name is rejected.
pub fn validate_name(kind: &str, name: &str, extra: &[char]) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{kind} name must not be empty"));
    }
    if name.len() > 64 {
        return Err(format!("{kind} name is longer than 64 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || extra.contains(c)))
    {
        return Err(format!(
            "{kind} name `{name}` contains `{c}`; allowed: a-z, 0-9, -{}",
            extra.iter().map(|c| format!(", {c}")).collect::<String>()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_at_first_separator() {
        assert_eq!(
            split_qualified("baton__sleep", "__"),
            Some(("baton", "sleep"))
        );
        assert_eq!(split_qualified("a__b__c", "__"), Some(("a", "b__c")));
        assert_eq!(split_qualified("nosep", "__"), None);
        assert_eq!(split_qualified("__tool", "__"), None);
        assert_eq!(split_qualified("a.b", "."), Some(("a", "b")));
        assert_eq!(qualify("a", "b", "__"), "a__b");
    }

    #[test]
    fn names() {
        assert!(validate_name("queue", "default", &['_', '.']).is_ok());
        assert!(
            validate_name("server", "Everything", &[])
                .unwrap_err()
                .contains("`E`")
        );
        assert!(validate_name("server", "", &[]).is_err());
        assert!(validate_name("server", &"a".repeat(65), &[]).is_err());
    }
}
