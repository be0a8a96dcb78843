//! References in env and header values: `${env:NAME}` (Baton's own environment) and
//! `${file:PATH}` (a file's content, less one trailing newline), anywhere in a value
//! (`Bearer ${env:API_TOKEN}`). A value with a reference is a template: it is stored as
//! written and resolved each time the server is started or connected, so a rotated token
//! file is picked up on the next reconnect. Other `${…}` text is literal.

const ENV: &str = "${env:";
const FILE: &str = "${file:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part<'a> {
    Literal(&'a str),
    Env(&'a str),
    File(&'a str),
}

/// Why a reference cannot be resolved; it names the reference, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub reference: String,
    pub why: String,
}

/// Whether the value holds a reference (then it is stored as written).
pub fn has_references(value: &str) -> bool {
    value.contains(ENV) || value.contains(FILE)
}

/// Splits a value into literal text and references; the message says what is wrong with a
/// reference (for `validate`).
pub fn parse(value: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = value;
    while let Some(start) = next_reference(rest) {
        if start > 0 {
            parts.push(Part::Literal(&rest[..start]));
        }
        let tail = &rest[start..];
        let (is_env, body) = match tail.strip_prefix(ENV) {
            Some(body) => (true, body),
            None => (false, &tail[FILE.len()..]),
        };
        let end = body.find('}').ok_or("a reference is not closed with `}`")?;
        let target = &body[..end];
        if is_env {
            let valid = target
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && target
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!(
                    "`${{env:{target}}}` must name an environment variable ([A-Za-z_][A-Za-z0-9_]*)"
                ));
            }
            parts.push(Part::Env(target));
        } else {
            if target.trim().is_empty() {
                return Err("`${file:}` must name a file".into());
            }
            parts.push(Part::File(target));
        }
        rest = &body[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest));
    }
    Ok(parts)
}

fn next_reference(s: &str) -> Option<usize> {
    match (s.find(ENV), s.find(FILE)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Resolves every reference of `value`, reading variables through `env` and files from
/// the file system.
pub fn resolve(
    value: &str,
    env: &dyn Fn(&str) -> Result<String, std::env::VarError>,
) -> Result<String, Unresolved> {
    let parts = parse(value).map_err(|why| Unresolved {
        reference: "a reference".into(),
        why,
    })?;
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Literal(s) => out.push_str(s),
            Part::Env(name) => match env(name) {
                Ok(v) => out.push_str(&v),
                Err(e) => {
                    return Err(Unresolved {
                        reference: format!("${{env:{name}}}"),
                        why: match e {
                            std::env::VarError::NotPresent => {
                                "the variable is not set in Baton's environment".into()
                            }
                            std::env::VarError::NotUnicode(_) => {
                                "the variable's value is not valid UTF-8".into()
                            }
                        },
                    });
                }
            },
            Part::File(path) => {
                let unresolved = |why: String| Unresolved {
                    reference: format!("${{file:{path}}}"),
                    why,
                };
                let bytes = std::fs::read(path).map_err(|e| unresolved(e.to_string()))?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| unresolved("the file is not UTF-8 text".into()))?;
                let text = text
                    .strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&text);
                out.push_str(text);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::env::VarError;

    use super::*;

    fn env(name: &str) -> Result<String, VarError> {
        match name {
            "TOKEN" => Ok("t0k3n".into()),
            "EMPTY" => Ok(String::new()),
            _ => Err(VarError::NotPresent),
        }
    }

    #[test]
    fn parses_templates() {
        assert_eq!(parse("plain").unwrap(), vec![Part::Literal("plain")]);
        assert_eq!(
            parse("Bearer ${env:TOKEN}").unwrap(),
            vec![Part::Literal("Bearer "), Part::Env("TOKEN")]
        );
        assert_eq!(
            parse("${file:/run/x}:${env:_A1}!").unwrap(),
            vec![
                Part::File("/run/x"),
                Part::Literal(":"),
                Part::Env("_A1"),
                Part::Literal("!")
            ]
        );
        // Other `${…}` is literal.
        assert_eq!(parse("${HOME}").unwrap(), vec![Part::Literal("${HOME}")]);
        assert!(!has_references("${HOME} and $env:X"));
        assert!(has_references("x${file:y}"));
    }

    #[test]
    fn malformed_references_are_refused() {
        for (value, says) in [
            ("${env:TOKEN", "not closed"),
            ("${env:}", "must name an environment variable"),
            ("${env:1X}", "must name an environment variable"),
            ("${env:A-B}", "must name an environment variable"),
            ("${file:}", "must name a file"),
            ("${file:  }", "must name a file"),
        ] {
            let e = parse(value).unwrap_err();
            assert!(e.contains(says), "{value}: {e}");
        }
    }

    #[test]
    fn resolves_variables_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let crlf = dir.path().join("crlf");
        std::fs::write(&crlf, "windows\r\n").unwrap();
        let two = dir.path().join("two");
        std::fs::write(&two, "keeps one\n\n").unwrap();
        let path = file.display();
        assert_eq!(
            resolve("Bearer ${env:TOKEN}", &env).unwrap(),
            "Bearer t0k3n"
        );
        assert_eq!(resolve("${env:EMPTY}", &env).unwrap(), "");
        assert_eq!(
            resolve(&format!("${{file:{path}}}"), &env).unwrap(),
            "from-file"
        );
        assert_eq!(
            resolve(&format!("${{file:{}}}", crlf.display()), &env).unwrap(),
            "windows"
        );
        assert_eq!(
            resolve(&format!("${{file:{}}}", two.display()), &env).unwrap(),
            "keeps one\n"
        );
        assert_eq!(resolve("no refs", &env).unwrap(), "no refs");
    }

    #[test]
    fn unresolvable_references_name_the_reference() {
        let e = resolve("x ${env:MISSING}", &env).unwrap_err();
        assert_eq!(e.reference, "${env:MISSING}");
        assert!(e.why.contains("not set"), "{e:?}");
        let e = resolve("${file:/nonexistent/baton/secret}", &env).unwrap_err();
        assert_eq!(e.reference, "${file:/nonexistent/baton/secret}");
        assert!(e.why.contains("No such file"), "{e:?}");
        let e = resolve("${env:NOT_UNICODE}", &|_| {
            Err(VarError::NotUnicode(std::ffi::OsString::new()))
        })
        .unwrap_err();
        assert!(e.why.contains("UTF-8"), "{e:?}");
    }
}
