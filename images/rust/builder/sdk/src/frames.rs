//! Binary (msgpack) hub frames, when the plugin asks for them and the hub agrees
//! (docs/protocol.md, "binary frames"). The SDK's messages stay JSON inside; a binary frame
//! is transcoded at the edge of the connection, one way or the other (rmp-serde).

use serde_json::Value;

/// The frame encoding a plugin may ask for besides JSON.
pub const FRAMES_MSGPACK: &str = "msgpack";

/// 2^53-1 (JavaScript's Number.MAX_SAFE_INTEGER): the hub refuses binary frames with
/// integers past it (a JSON peer could not receive them exactly), so such a message goes as
/// a text frame.
const MAX_SAFE_INT: u64 = (1 << 53) - 1;

/// LOGOMESH_FRAMES: does the plugin ask for msgpack frames?
pub(crate) fn msgpack_from_env() -> bool {
    std::env::var("LOGOMESH_FRAMES").map_or(false, |v| v.trim() == FRAMES_MSGPACK)
}

/// One JSON message as msgpack (maps with their field names, the smallest integers), or
/// `None` when msgpack cannot carry it for a JSON peer (a whole number past 2^53, written as
/// an integer or not: the hub reads 1e20 as one): it then goes as text.
pub(crate) fn json_to_msgpack(json: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(json).ok()?;
    // An explicit stack: the depth was bounded when the message was encoded, but a stack costs nothing.
    let mut stack = vec![&v];
    while let Some(x) = stack.pop() {
        match x {
            Value::Number(n) => {
                // The hub reads every whole number as an integer: a float such as 1e20 too is past 2^53.
                let unsafe_int = n.as_u64().map_or(false, |u| u > MAX_SAFE_INT)
                    || n.as_i64().map_or(false, |i| i < -(MAX_SAFE_INT as i64))
                    || n.as_f64().map_or(false, |f| f.fract() == 0.0 && f.abs() > MAX_SAFE_INT as f64);
                if unsafe_int {
                    return None;
                }
            }
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    rmp_serde::to_vec_named(&v).ok()
}

/// One binary frame from the hub as the JSON text the SDK reads. The hub sends only what a
/// JSON peer could receive (string keys, no bin, no extensions), and checked its depth.
pub(crate) fn msgpack_to_json(frame: &[u8]) -> Result<String, String> {
    let v: Value = rmp_serde::from_slice(frame).map_err(|e| format!("not msgpack: {e}"))?;
    serde_json::to_string(&v).map_err(|e| format!("not a message a JSON peer could receive: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_goes_binary_and_what_stays_text() {
        for ok in [r#"{"a":9007199254740991}"#, r#"{"a":-9007199254740991}"#, "[1.5,1e-300,0,9007199254740991.0]", "7", r#"{"a":[[{"b":[1]}]],"s":"ünï <&>"}"#] {
            let b = json_to_msgpack(ok.as_bytes()).unwrap_or_else(|| panic!("{ok} should go binary"));
            let back: Value = serde_json::from_str(&msgpack_to_json(&b).unwrap()).unwrap();
            assert_eq!(back, serde_json::from_str::<Value>(ok).unwrap(), "{ok}");
        }
        for text in [r#"{"a":9007199254740992}"#, r#"{"a":-9007199254740992}"#, "9007199254740992.0", r#"{"x":[{"y":-9007199254740993}]}"#, "18446744073709551615", "[1e300]", "1152921504606846976.0"] {
            assert!(json_to_msgpack(text.as_bytes()).is_none(), "{text} should stay text");
        }
        // Field names and the smallest integers: fixmap, fixstr "n", fixint 1.
        assert_eq!(json_to_msgpack(br#"{"n":1}"#).unwrap(), vec![0x81, 0xa1, b'n', 0x01]);
        assert!(msgpack_to_json(&[0xc1]).is_err());
    }
}
