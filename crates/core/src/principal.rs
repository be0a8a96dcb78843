//! Who a request acts as.
//!
//! With authentication on, the principal is the credential's (see [`crate::auth`]) and
//! the `Baton-Principal` header is ignored. On a node without credentials (one local
//! user), a request may name its principal in that header (absent: [`ANONYMOUS`]):
//! that is a convenience, not security. Either way ownership is enforced everywhere: a
//! task of another principal is indistinguishable from a missing one.

/// The principal of requests that name none.
pub const ANONYMOUS: &str = "anonymous";

/// The header that names the principal (HTTP header names are case-insensitive).
pub const HEADER: &str = "baton-principal";

/// The principal a header value names; `None` (no header) is [`ANONYMOUS`].
pub fn from_header(value: Option<&[u8]>) -> Result<String, String> {
    let Some(raw) = value else {
        return Ok(ANONYMOUS.to_string());
    };
    let s = std::str::from_utf8(raw).map_err(|_| "Baton-Principal must be ASCII".to_string())?;
    if s.is_empty() || s.len() > 200 {
        return Err("Baton-Principal must be 1 to 200 characters".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':')))
    {
        return Err(format!(
            "Baton-Principal may hold letters, digits and . _ - @ : only (found {c:?})"
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_checked() {
        assert_eq!(from_header(None).unwrap(), ANONYMOUS);
        assert_eq!(
            from_header(Some(b"alice@example.com")).unwrap(),
            "alice@example.com"
        );
        assert!(from_header(Some(b"")).unwrap_err().contains("1 to 200"));
        assert!(from_header(Some(b"a b")).unwrap_err().contains("' '"));
        assert!(from_header(Some(&[0xff])).is_err());
    }
}
