//! Credentials hidden from what callers see of a server (its view, its errors): URL
//! userinfo, query parameters with secret-looking names, and command-line arguments that
//! carry a token or a password. Over-hiding is cheap; missing one is not, so names are
//! matched loosely (any word of `api_key`, `apiKey`, `X-Api-Key` that ends the name).

/// What replaces a hidden value.
pub const MASK: &str = "***";

/// Last words of a name that holds a credential (`access_token`, `--api-key`, `sig`).
const SECRET_WORDS: &[&str] = &[
    "token",
    "key",
    "apikey",
    "secret",
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "sig",
    "signature",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "jwt",
    "bearer",
    "cookie",
];

/// Endings of a name written as one word (`accesstoken`, `clientsecret`); `key` alone is
/// not among them (`monkey`).
const SECRET_SUFFIXES: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "privatekey",
    "signature",
];

/// Whether a parameter, flag, variable or header name looks like it holds a credential.
pub fn is_secret_name(name: &str) -> bool {
    let name = percent_decode(name);
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        // camelCase: a capital after a small letter or digit starts a word.
        if c.is_uppercase() && prev_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    let Some(last) = words.last() else {
        return false;
    };
    if SECRET_WORDS.contains(&last.as_str()) {
        return true;
    }
    let joined: String = words.concat();
    SECRET_SUFFIXES.iter().any(|s| joined.ends_with(s))
}

/// A URL with its userinfo hidden (`https://user:***@host`, `https://***@host` when it is
/// a lone token) and the values of secret-looking query and fragment parameters hidden.
/// Total: any text goes in, nothing panics.
pub fn url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    if let Some(i) = url.find("://") {
        out.push_str(&url[..i + 3]);
        rest = &url[i + 3..];
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        match authority.rfind('@') {
            Some(at) => {
                match authority[..at].split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(MASK),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &rest[end..];
    }
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (rest, None),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            out.push_str(&pairs(query));
        }
        None => out.push_str(before_fragment),
    }
    if let Some(f) = fragment {
        out.push('#');
        // OAuth's implicit flow puts `access_token=` in the fragment.
        out.push_str(&pairs(f));
    }
    out
}

/// `a=1&token=x` → `a=1&token=***`.
fn pairs(s: &str) -> String {
    s.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => format!("{name}={MASK}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Command-line arguments with credentials hidden: `--token=…`, the argument after
/// `--token`, `API_KEY=…`, `Authorization: …`, and URLs anywhere in an argument.
pub fn args(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for a in args {
        if hide_next {
            hide_next = false;
            out.push(MASK.to_string());
            continue;
        }
        let (shown, next) = arg(a);
        hide_next = next;
        out.push(shown);
    }
    out
}

/// One argument, and whether the next one is the value of a secret flag.
fn arg(a: &str) -> (String, bool) {
    let flag = a.trim_start_matches('-');
    if flag.len() < a.len() {
        let dashes = &a[..a.len() - flag.len()];
        return match flag.split_once('=') {
            Some((name, _)) if is_secret_name(name) => (format!("{dashes}{name}={MASK}"), false),
            Some((name, value)) => (format!("{dashes}{name}={}", text(value)), false),
            None => (text(a), is_secret_name(flag)),
        };
    }
    // `API_TOKEN=…` (as given to `env`), `Authorization: Bearer …` (as given to `curl -H`).
    for sep in ['=', ':'] {
        if let Some((name, _)) = a.split_once(sep)
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            && is_secret_name(name)
        {
            let space = if sep == ':' { " " } else { "" };
            return (format!("{name}{sep}{space}{MASK}"), false);
        }
    }
    (text(a), false)
}

/// Free text (an error message) with every URL in it passed through [`url`].
pub fn text(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The scheme: letters, digits, `+`, `-`, `.` before `://`.
        let start = rest[..i]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(p, c)| p + c.len_utf8());
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')'))
            .map_or(rest.len(), |p| i + p);
        out.push_str(&rest[..start]);
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `%5F` → `_` and the like, for names only; malformed escapes stay as they are.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "token",
            "TOKEN",
            "key",
            "secret",
            "password",
            "sig",
            "api_key",
            "API-KEY",
            "apiKey",
            "APIKey",
            "apikey",
            "access_token",
            "accessToken",
            "accesstoken",
            "GITHUB_TOKEN",
            "client_secret",
            "clientsecret",
            "X-Api-Key",
            "X-Amz-Signature",
            "X-Amz-Security-Token",
            "db.password",
            "auth",
            "Authorization",
            "api%5Fkey",
            "private_key",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "",
            "---",
            "page",
            "limit",
            "monkey",
            "key_file",
            "token_type",
            "keyword",
            "user",
            "tokens_per_s",
            "format",
            "signal",
            "passage",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn urls() {
        for (given, shown) in [
            ("https://host/mcp", "https://host/mcp"),
            (
                "https://user:pa55@host:8443/mcp",
                "https://user:***@host:8443/mcp",
            ),
            ("https://ghp_abc@github.com/x", "https://***@github.com/x"),
            ("https://u:p:q@h", "https://u:***@h"),
            ("https://a@b:c@h/p", "https://a@b:***@h/p"),
            (
                "https://h/mcp?token=abc&page=2",
                "https://h/mcp?token=***&page=2",
            ),
            (
                "https://h/?API_KEY=1&apiKey=2&x_token=3&sig=4&Signature=5&q=6",
                "https://h/?API_KEY=***&apiKey=***&x_token=***&sig=***&Signature=***&q=6",
            ),
            ("https://h/?token", "https://h/?token"),
            ("https://h/?token=", "https://h/?token=***"),
            (
                "https://h/cb#access_token=t&state=s",
                "https://h/cb#access_token=***&state=s",
            ),
            (
                "https://h/p?password=x#frag",
                "https://h/p?password=***#frag",
            ),
            (
                "postgres://baton:hunter2@db:5432/baton",
                "postgres://baton:***@db:5432/baton",
            ),
            ("not a url", "not a url"),
            ("/relative?secret=x", "/relative?secret=***"),
            ("https://h/a@b", "https://h/a@b"),
            ("", ""),
            ("://", "://"),
            ("https://@h", "https://***@h"),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
    }

    #[test]
    fn arguments() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        for (given, shown) in [
            (
                s(&["-y", "@scope/server", "--port", "80"]),
                s(&["-y", "@scope/server", "--port", "80"]),
            ),
            (s(&["--token=abc"]), s(&["--token=***"])),
            (s(&["--token=a=b=c"]), s(&["--token=***"])),
            (s(&["--password=", "x"]), s(&["--password=***", "x"])),
            (s(&["-api-key=abc"]), s(&["-api-key=***"])),
            (
                s(&["--api_key", "abc", "next"]),
                s(&["--api_key", "***", "next"]),
            ),
            (s(&["--token", "--verbose"]), s(&["--token", "***"])),
            (s(&["--token"]), s(&["--token"])),
            (
                s(&["--access-token", "a", "--secret", "b"]),
                s(&["--access-token", "***", "--secret", "***"]),
            ),
            (s(&["--key-file", "/k"]), s(&["--key-file", "/k"])),
            (s(&["GITHUB_TOKEN=ghp_1"]), s(&["GITHUB_TOKEN=***"])),
            (s(&["PATH=/bin"]), s(&["PATH=/bin"])),
            (
                s(&["-H", "Authorization: Bearer x"]),
                s(&["-H", "Authorization: ***"]),
            ),
            (
                s(&["--url=https://u:p@h/?token=t"]),
                s(&["--url=https://u:***@h/?token=***"]),
            ),
            (s(&["postgres://u:p@h/db"]), s(&["postgres://u:***@h/db"])),
            (s(&["a=b=c", "x:y"]), s(&["a=b=c", "x:y"])),
            (s(&["-", "--", ""]), s(&["-", "--", ""])),
        ] {
            assert_eq!(args(&given), shown, "{given:?}");
        }
    }

    #[test]
    fn urls_in_messages() {
        assert_eq!(
            text("error sending request for url (https://u:p@h/mcp?token=t): refused"),
            "error sending request for url (https://u:***@h/mcp?token=***): refused"
        );
        assert_eq!(
            text("a https://k@h b \"http://h?key=1\" c"),
            "a https://***@h b \"http://h?key=***\" c"
        );
        assert_eq!(text("no url here"), "no url here");
        assert_eq!(text("ends with ://"), "ends with ://");
        assert_eq!(text("é://ü@x"), "é://***@x");
    }

    const SECRET_FLAGS: &[&str] = &[
        "token",
        "password",
        "api-key",
        "api_key",
        "secret",
        "access-token",
        "github_token",
        "key",
        "sig",
    ];

    proptest! {
        #[test]
        fn never_panics(v in proptest::collection::vec(".*", 0..8), t in ".*") {
            let shown = args(&v);
            prop_assert_eq!(shown.len(), v.len());
            let _ = url(&t);
            let _ = text(&t);
            let _ = is_secret_name(&t);
        }

        #[test]
        fn a_secret_flag_never_shows_its_value(
            before in proptest::collection::vec("[^\\-].*", 0..4),
            flag in proptest::sample::select(SECRET_FLAGS),
            dashes in "--?",
            value in ".+",
            joined in any::<bool>(),
        ) {
            let mut given = before.clone();
            if joined {
                given.push(format!("{dashes}{flag}={value}"));
            } else {
                given.push(format!("{dashes}{flag}"));
                given.push(value.clone());
            }
            let shown = args(&given);
            if joined {
                prop_assert_eq!(shown.last().unwrap(), &format!("{dashes}{flag}={MASK}"));
            } else {
                prop_assert_eq!(shown.last().unwrap(), MASK);
            }
        }

        #[test]
        fn url_credentials_never_show(
            user in "[a-z]{1,8}",
            password in "[A-Za-z0-9._~!$'()*+,;=-]{1,16}",
            param in proptest::sample::select(SECRET_FLAGS),
            value in "[A-Za-z0-9._~-]{1,16}",
        ) {
            let given = format!("https://{user}:{password}@host.example/p?{param}={value}&page=2");
            let shown = url(&given);
            prop_assert_eq!(
                shown,
                format!("https://{user}:{MASK}@host.example/p?{param}={MASK}&page=2")
            );
        }
    }
}
