//! The `Authorization` header: `Bearer <token>` (RFC 6750), nothing else.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// Why an `Authorization` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("send one Authorization header, not several")]
    Repeated,
    #[error("the Authorization header is not text")]
    NotText,
    #[error("the Authorization header uses the `{0}` scheme; send `Authorization: Bearer <token>`")]
    Scheme(String),
    #[error("the bearer token is empty; send `Authorization: Bearer <token>`")]
    Empty,
    #[error(
        "the bearer token has characters a token cannot have (letters, digits and -._~+/ then =)"
    )]
    Malformed,
    #[error("the bearer token is longer than {MAX_TOKEN} bytes")]
    TooLong,
}

/// Longest token accepted: a JWT with many claims stays well under it.
pub const MAX_TOKEN: usize = 16 * 1024;

/// The bearer token of a request: `Ok(None)` when it sent no `Authorization` header.
pub fn token(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::Repeated);
    }
    parse(value.to_str().map_err(|_| BearerError::NotText)?).map(Some)
}

/// Parses an `Authorization` header value.
pub fn parse(value: &str) -> Result<&str, BearerError> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = match value.split_once([' ', '\t']) {
        Some((s, r)) => (s, r.trim_start_matches([' ', '\t'])),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        if scheme.is_empty() {
            return Err(BearerError::Empty);
        }
        // Say which scheme came, never the credential that followed it.
        let shown: String = scheme.chars().take(20).collect();
        return Err(BearerError::Scheme(shown));
    }
    if rest.is_empty() {
        return Err(BearerError::Empty);
    }
    if rest.len() > MAX_TOKEN {
        return Err(BearerError::TooLong);
    }
    // token68: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = rest.trim_end_matches('=');
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Err(BearerError::Malformed);
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    #[test]
    fn bearer_tokens_are_read() {
        assert_eq!(parse("Bearer abc").unwrap(), "abc");
        assert_eq!(
            parse("bearer  abc.def-g_h~i+j/k==").unwrap(),
            "abc.def-g_h~i+j/k=="
        );
        assert_eq!(parse("BEARER\tx").unwrap(), "x");
        assert_eq!(parse("  Bearer x  ").unwrap(), "x");
    }

    #[test]
    fn other_headers_are_refused_with_a_reason() {
        assert_eq!(parse(""), Err(BearerError::Empty));
        assert_eq!(parse("Bearer"), Err(BearerError::Empty));
        assert_eq!(parse("Bearer   "), Err(BearerError::Empty));
        assert_eq!(
            parse("Basic dXNlcjpwYXNz"),
            Err(BearerError::Scheme("Basic".into()))
        );
        assert_eq!(parse("Bearer a b"), Err(BearerError::Malformed));
        assert_eq!(parse("Bearer ==="), Err(BearerError::Malformed));
        assert_eq!(parse("Bearer a=b"), Err(BearerError::Malformed));
        assert_eq!(parse("Bearer é"), Err(BearerError::Malformed));
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN + 1));
        assert_eq!(parse(&long), Err(BearerError::TooLong));
        let shown = BearerError::Scheme("Basic".into()).to_string();
        assert!(!shown.contains("dXNlcjpwYXNz"), "{shown}");
    }

    #[test]
    fn headers_absent_repeated_or_binary() {
        let mut h = HeaderMap::new();
        assert_eq!(token(&h), Ok(None));
        h.append(AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        assert_eq!(token(&h), Ok(Some("a")));
        h.append(AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(token(&h), Err(BearerError::Repeated));
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        );
        assert_eq!(token(&h), Err(BearerError::NotText));
    }

    proptest! {
        /// Any header text: an answer, never a panic; an accepted token is a token68
        /// that the header ends with.
        #[test]
        fn any_header_parses_or_is_refused(value in ".{0,200}") {
            if let Ok(t) = parse(&value) {
                prop_assert!(!t.is_empty());
                prop_assert!(value.trim_end().ends_with(t));
                prop_assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)));
            }
        }

        /// Every well-formed token comes back as sent.
        #[test]
        fn well_formed_tokens_round_trip(
            scheme in "(?i:bearer)",
            t in "[A-Za-z0-9._~+/-]{1,100}={0,2}",
            pad in "[ \t]{1,3}",
        ) {
            let header = format!("{scheme}{pad}{t}");
            prop_assert_eq!(parse(&header), Ok(t.as_str()));
        }
    }
}
