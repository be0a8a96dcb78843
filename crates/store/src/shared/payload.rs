//! Large documents stored compressed, transparently to every reader: arguments and
//! results whose JSON is longer than [`COMPRESS_ABOVE`] go to the `*_zstd` columns as
//! zstd, and the JSON column keeps a stub (`{}`; for a result, its `_meta`, where
//! analytics finds reported costs). A document that compression would not shrink by an
//! eighth stays as it is.

use serde_json::Value;

use crate::StoreResult;
use crate::shared::rows::decode_err;

/// Documents with more JSON than this many bytes are stored compressed.
pub const COMPRESS_ABOVE: usize = 4096;

/// zstd's level: its default, a good balance of speed and ratio for JSON.
const LEVEL: i32 = 3;

/// A document as the store writes it: the JSON column, and the compressed whole if any.
pub struct Stored {
    pub json: String,
    pub zstd: Option<Vec<u8>>,
}

/// Arguments as stored.
pub fn arguments(v: &Value) -> Stored {
    encode(v, || Value::Object(Default::default()))
}

/// A result as stored: the stub keeps its `_meta`.
pub fn result(v: &Value) -> Stored {
    encode(v, || {
        let mut stub = serde_json::Map::new();
        if let Some(meta) = v.get("_meta") {
            stub.insert("_meta".into(), meta.clone());
        }
        Value::Object(stub)
    })
}

fn encode(v: &Value, stub: impl FnOnce() -> Value) -> Stored {
    let json = v.to_string();
    if json.len() <= COMPRESS_ABOVE {
        return Stored { json, zstd: None };
    }
    match zstd::bulk::compress(json.as_bytes(), LEVEL) {
        Ok(z) if z.len() < json.len() - json.len() / 8 => Stored {
            json: stub().to_string(),
            zstd: Some(z),
        },
        _ => Stored { json, zstd: None },
    }
}

/// The document read back: the compressed whole when there is one, else the JSON column.
pub fn decode(json: Option<Value>, zstd: Option<Vec<u8>>) -> StoreResult<Option<Value>> {
    let Some(z) = zstd else {
        return Ok(json);
    };
    let bytes = zstd::stream::decode_all(z.as_slice()).map_err(decode_err)?;
    serde_json::from_slice(&bytes).map(Some).map_err(decode_err)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn small_documents_stay_as_they_are() {
        let v = json!({"a": 1});
        let s = arguments(&v);
        assert!(s.zstd.is_none());
        assert_eq!(s.json, v.to_string());
        assert_eq!(decode(Some(v.clone()), None).unwrap(), Some(v));
    }

    #[test]
    fn large_documents_round_trip_compressed_with_a_stub() {
        let rows: Vec<Value> = (0..500)
            .map(|i| json!({"id": i, "name": format!("row {i}"), "ok": i % 3 == 0}))
            .collect();
        let v = json!({"content": [{"type": "text", "text": "rows"}],
                       "structuredContent": {"rows": rows},
                       "_meta": {"baton/cost": {"usd": 0.25}}});
        let s = result(&v);
        let z = s.zstd.clone().expect("compressed");
        assert!(z.len() * 4 < v.to_string().len(), "{} bytes", z.len());
        let stub: Value = serde_json::from_str(&s.json).unwrap();
        assert_eq!(stub, json!({"_meta": {"baton/cost": {"usd": 0.25}}}));
        assert_eq!(decode(Some(stub), Some(z)).unwrap(), Some(v.clone()));
        let a = arguments(&v);
        assert_eq!(a.json, "{}");
        assert_eq!(decode(None, a.zstd).unwrap(), Some(v));
    }

    #[test]
    fn compression_must_pay_for_itself() {
        // Random base64 (as in an image): compressed only when that saves an eighth.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let noise: String = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(alphabet[(x % 64) as usize])
            })
            .collect();
        let v = json!({"image": noise});
        let plain = v.to_string().len();
        let s = arguments(&v);
        if let Some(z) = &s.zstd {
            assert!(z.len() <= plain - plain / 8, "{} of {plain}", z.len());
        } else {
            assert_eq!(s.json.len(), plain);
        }
        assert_eq!(
            decode(serde_json::from_str(&s.json).ok(), s.zstd).unwrap(),
            Some(v)
        );
    }
}
