//! Pages and waits, the same for every front door: how many items a list returns, where
//! the next page starts (an opaque cursor), and how long a request may wait for a task.
//! Out-of-range values are refused with a message naming the limit, never clamped.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton_core::submit::InvalidRequest;

/// Items in a page when the request names no limit.
pub const DEFAULT_PAGE: u32 = 50;
/// Most items in a page.
pub const MAX_PAGE: u32 = 1000;
/// Longest a request may wait for a task or a workflow, in seconds.
pub const MAX_WAIT_SECS: u64 = 300;

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    /// Items older than this (newest first); `None` for the first page.
    pub before_seq: Option<i64>,
}

impl Page {
    /// Checks a request's `limit` and `cursor`.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Page, InvalidRequest> {
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(InvalidRequest::new(
                "limit",
                format!("limit={limit} is out of range 1..={MAX_PAGE}"),
            ));
        }
        Ok(Page {
            limit,
            before_seq: cursor.map(decode_cursor).transpose()?,
        })
    }

    /// The cursor of the page after `items` (numbered by `seq`), if there may be one.
    pub fn next<T>(&self, items: &[T], seq: impl Fn(&T) -> i64) -> Option<String> {
        (items.len() == self.limit as usize)
            .then(|| items.last().map(|t| encode_cursor(seq(t))))
            .flatten()
    }
}

/// The cursor that continues a list after the item numbered `seq`.
pub fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{seq}"))
}

fn decode_cursor(c: &str) -> Result<i64, InvalidRequest> {
    URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("seq:")?.parse::<i64>().ok())
        .filter(|seq| *seq > 0)
        .ok_or_else(|| {
            InvalidRequest::new(
                "cursor",
                format!(
                    "invalid cursor `{}`; pass the next_cursor value of a previous page",
                    c.chars().take(64).collect::<String>()
                ),
            )
        })
}

/// Checks how long a request may wait (`field` names it: `wait`, `wait_seconds`).
pub fn wait(field: &str, seconds: Option<u64>) -> Result<Duration, InvalidRequest> {
    let seconds = seconds.unwrap_or(0);
    if seconds > MAX_WAIT_SECS {
        return Err(InvalidRequest::new(
            field,
            format!("{field}={seconds} is too long; at most {MAX_WAIT_SECS} seconds"),
        ));
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = encode_cursor(42);
        assert_eq!(Page::parse(None, Some(&c)).unwrap().before_seq, Some(42));
        for junk in ["garbage", "c2VxOi0x", ""] {
            let e = Page::parse(None, Some(junk)).unwrap_err();
            assert!(e.message.contains("invalid cursor"), "{junk}: {e}");
        }
        assert_eq!(Page::parse(None, None).unwrap().limit, DEFAULT_PAGE);
        assert!(Page::parse(Some(0), None).is_err());
        assert!(Page::parse(Some(MAX_PAGE + 1), None).is_err());
        let p = Page::parse(Some(2), None).unwrap();
        assert_eq!(p.next(&[5, 3], |s| *s), Some(encode_cursor(3)));
        assert_eq!(p.next(&[5], |s| *s), None);
    }

    #[test]
    fn waits_beyond_the_limit_are_refused_not_clamped() {
        assert_eq!(wait("wait", Some(300)).unwrap(), Duration::from_secs(300));
        let e = wait("wait_seconds", Some(301)).unwrap_err();
        assert_eq!(e.field, "wait_seconds");
        assert!(e.message.contains("at most 300"), "{e}");
    }
}
