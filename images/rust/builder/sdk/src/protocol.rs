//! The hub protocol's constants and its codec: JSON frames in and out, within the depth
//! and size limits (docs/protocol.md). The constants mirror images/protocol/protocol.json
//! of LogoMesh; the SDK's tests check that they match it.

use crate::Error;
use serde_json::Value;
use std::time::Duration;

/// The SDK's version, sent in `hello` as `rust/<version>`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The protocol major version this SDK speaks.
pub const PROTOCOL: u64 = 1;

/// The hub's upper bound for a call's timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_millis(300_000);

/// The hub's timeout for a call that names none.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(30_000);

/// How deep arrays and objects may nest in a message, the message object itself being
/// level 1. Deeper ones are refused both ways.
pub const MAX_DEPTH: usize = 64;

/// The hub's maximum message size unless the operator sets one.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The largest maximum an operator may configure: the SDK's limit until the hub announces
/// its own in the answer to hello. A frame over it is not even read (the connection closes).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The hub does not read a frame over this many times its maximum.
pub const HARD_LIMIT_FACTOR: usize = 16;

/// The longest message id.
pub const ID_MAX_LENGTH: usize = 128;

/// The message types a client sends.
pub const MESSAGES_TO_HUB: [&str; 8] = ["hello", "request", "response", "event", "broadcast", "subscribe", "unsubscribe", "segment"];

/// The message types the hub sends.
pub const MESSAGES_FROM_HUB: [&str; 6] = ["request", "response", "event", "broadcast", "shutdown", "error"];

/// The error codes that travel on the wire, and who sends them.
pub const WIRE_CODES: [(&str, &str); 14] = [
    ("LM_PROTOCOL", "hub, sdk"),
    ("LM_MESSAGE_TOO_LARGE", "hub, sdk"),
    ("LM_PERMISSION_DENIED", "hub"),
    ("LM_RATE_LIMITED", "hub"),
    ("LM_TIMEOUT", "hub, sdk"),
    ("LM_PLUGIN_UNAVAILABLE", "hub, sdk"),
    ("LM_PLUGIN_EXITED", "hub"),
    ("LM_PLUGIN_ERROR", "hub, sdk"),
    ("LM_METHOD_NOT_FOUND", "hub, sdk"),
    ("LM_INVALID_ARGUMENT", "sdk"),
    ("LM_CONTROLLER_UNAVAILABLE", "sdk"),
    ("LM_SEGMENT", "hub, sdk"),
    ("LM_MEMORY_QUOTA", "hub"),
    ("LM_SCHEMA", "hub"),
];

/// A method name as the protocol allows it: a letter or `_`, then letters, digits or `_`.
pub(crate) fn valid_method(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// A subscription pattern: `a.b`, `a.*` or `*`.
pub(crate) fn valid_pattern(topic: &str) -> bool {
    if topic == "*" {
        return true;
    }
    let body = topic.strip_suffix(".*").unwrap_or(topic);
    !body.is_empty()
        && body
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'))
}

/// Does a subscription pattern match a topic? `*` matches everything (including a
/// broadcast without a topic), `a.*` every topic under `a.`.
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) if pattern.ends_with(".*") => topic.starts_with(prefix),
        _ => pattern == topic,
    }
}

/// How deep arrays and objects nest in a JSON text (strings skipped): exact when over
/// MAX_DEPTH, otherwise a bound no greater than it (a text with at most MAX_DEPTH opening
/// brackets is not scanned).
pub(crate) fn depth(b: &[u8]) -> usize {
    let opening = b.iter().filter(|c| **c == b'[' || **c == b'{').count();
    if opening <= MAX_DEPTH {
        return opening;
    }
    let (mut level, mut max, mut in_string, mut i) = (0usize, 0usize, false, 0usize);
    while i < b.len() {
        let c = b[i];
        if in_string {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
        } else if c == b'[' || c == b'{' {
            level += 1;
            max = max.max(level);
        } else if c == b']' || c == b'}' {
            level = level.saturating_sub(1);
        }
        i += 1;
    }
    max
}

/// The top-level `type`, `id` and `correlationId` of a frame, when they are strings.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct TopFields {
    pub(crate) kind: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) correlation_id: Option<String>,
}

/// Read the top-level fields of a frame without parsing it (it may be too deep or too
/// large to parse).
pub(crate) fn top_fields(b: &[u8]) -> TopFields {
    let mut found = TopFields::default();
    // At level 1: 0 nothing, 1 a key may come, 2 a ':' may come, 3 a value may come.
    let (mut level, mut state, mut key, mut i) = (0usize, 0u8, 0u8, 0usize);
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            if level == 1 && i < b.len() {
                let s: Option<String> = serde_json::from_slice(&b[start..=i]).ok();
                if state == 1 {
                    key = match s.as_deref() {
                        Some("type") => 1,
                        Some("id") => 2,
                        Some("correlationId") => 3,
                        _ => 0,
                    };
                    state = 2;
                } else if state == 3 {
                    let slot = match key {
                        1 => Some(&mut found.kind),
                        2 => Some(&mut found.id),
                        3 => Some(&mut found.correlation_id),
                        _ => None,
                    };
                    if let Some(slot) = slot {
                        if slot.is_none() {
                            *slot = s;
                        }
                    }
                    state = 0;
                }
            }
        } else if c == b'[' || c == b'{' {
            level += 1;
            if level == 1 && c == b'{' {
                state = 1;
            } else if level == 2 {
                state = 0;
            }
        } else if c == b']' || c == b'}' {
            level = level.saturating_sub(1);
        } else if level == 1 && c == b':' {
            state = if state == 2 { 3 } else { 0 };
        } else if level == 1 && c == b',' {
            state = 1;
        }
        i += 1;
    }
    found
}

/// A frame from the hub the SDK will not handle: too large, too deep, or not JSON.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) fields: TopFields,
}

/// One frame from the hub, within `max` bytes and MAX_DEPTH.
pub(crate) fn decode(text: &str, max: usize) -> Result<Value, Refusal> {
    let b = text.as_bytes();
    let refuse = |code, message| Refusal { code, message, fields: top_fields(b) };
    if b.len() > max {
        return Err(refuse(
            "LM_MESSAGE_TOO_LARGE",
            format!("a message of {} bytes exceeds the maximum message size of {max} bytes", b.len()),
        ));
    }
    let levels = depth(b);
    if levels > MAX_DEPTH {
        return Err(refuse(
            "LM_PROTOCOL",
            format!("a message nested {levels} levels deep exceeds the maximum depth of {MAX_DEPTH}"),
        ));
    }
    serde_json::from_str(text).map_err(|e| refuse("LM_PROTOCOL", format!("a message that is not JSON: {e}")))
}

/// How deep a value nests (a scalar 0, `[]` 1), counted no further than `limit + 1`, so
/// that measuring a value of any depth recurses at most that far.
pub(crate) fn value_depth(v: &Value, limit: usize) -> usize {
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(o) => Box::new(o.values()),
        _ => return 0,
    };
    if limit == 0 {
        return 1;
    }
    1 + children.map(|c| value_depth(c, limit - 1)).max().unwrap_or(0)
}

/// Take a value apart without recursion: dropping a deeply nested value the usual way
/// recurses once per level, which a value built deep enough turns into a stack overflow.
pub(crate) fn drop_deep(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a),
            Value::Object(o) => stack.extend(o.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Why a message cannot be sent: too deep, or (`too_large`) too large.
#[derive(Debug)]
pub(crate) struct EncodeError {
    pub(crate) reason: String,
    pub(crate) too_large: bool,
}

/// A message as the JSON text of one frame, within `max` bytes and MAX_DEPTH. The depth is
/// checked before serializing: serde_json recurses once per level.
pub(crate) fn encode(msg: &Value, max: usize) -> Result<Vec<u8>, EncodeError> {
    let levels = value_depth(msg, MAX_DEPTH);
    if levels > MAX_DEPTH {
        return Err(EncodeError {
            reason: format!("is nested deeper than the maximum depth of {MAX_DEPTH}"),
            too_large: false,
        });
    }
    let bytes = serde_json::to_vec(msg).map_err(|e| EncodeError {
        reason: format!("cannot be encoded as JSON: {e}"),
        too_large: false,
    })?;
    if bytes.len() > max {
        return Err(EncodeError {
            reason: format!("is {} bytes, over the maximum message size of {max} bytes", bytes.len()),
            too_large: true,
        });
    }
    Ok(bytes)
}

/// The error a message that cannot be sent becomes: `code` for a message too deep,
/// LM_MESSAGE_TOO_LARGE for one too large; `what` names it ("the result of method x").
pub(crate) fn encode_error(e: EncodeError, code: &str, what: &str) -> Error {
    Error::new(if e.too_large { "LM_MESSAGE_TOO_LARGE" } else { code }, format!("{what} {}", e.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_patterns() {
        assert!(valid_method("digest") && valid_method("_x1") && !valid_method("1x") && !valid_method("a.b") && !valid_method(""));
        assert!(
            valid_pattern("*")
                && valid_pattern("a.*")
                && valid_pattern("a.b-c_d")
                && !valid_pattern("a.")
                && !valid_pattern("*.a")
                && !valid_pattern("")
        );
        assert!(topic_matches("*", "x.y") && topic_matches("thought.*", "thought.added") && !topic_matches("thought.*", "thoughts.added"));
        assert!(topic_matches("a.b", "a.b") && !topic_matches("a.b", "a.b.c") && !topic_matches("thought.*", "thought"));
    }

    #[test]
    fn depth_counts_the_frame_as_level_one_and_skips_strings() {
        assert_eq!(depth(br#"{"a":[[]]}"#), 3);
        let text = format!(r#"{{"s":"{}","d":{}{}}}"#, "[".repeat(200), "[".repeat(70), "]".repeat(70));
        assert_eq!(depth(text.as_bytes()), 71);
        assert!(depth(br#"{"s":""[[[["}"#) <= MAX_DEPTH);
    }

    #[test]
    fn a_deep_or_large_frame_is_refused_with_its_top_level_fields() {
        let deep = format!(r#"{{"type":"request","data":{}{},"id":"r\"1","to":["x"]}}"#, "[".repeat(5000), "]".repeat(5000));
        let r = decode(&deep, 1 << 20).unwrap_err();
        assert_eq!(r.code, "LM_PROTOCOL");
        assert!(r.message.contains("5001 levels"), "{}", r.message);
        assert_eq!((r.fields.kind.as_deref(), r.fields.id.as_deref()), (Some("request"), Some("r\"1")));
        let large = format!(r#"{{"type":"response","correlationId":"7","data":"{}"}}"#, "x".repeat(100));
        let r = decode(&large, 64).unwrap_err();
        assert_eq!((r.code, r.fields.correlation_id.as_deref()), ("LM_MESSAGE_TOO_LARGE", Some("7")));
        let f = top_fields(br#"{"id":5,"type":{"id":"no"},"correlationId":"c"}"#);
        assert_eq!(f, TopFields { kind: None, id: None, correlation_id: Some("c".into()) });
        for garbage in [format!(r#"{{"id":"a{}"#, r#"\""#.repeat(1000)), "[".repeat(1 << 20), r#""\"#.to_string()] {
            assert!(decode(&garbage, 4 << 20).is_err());
        }
    }

    #[test]
    fn what_cannot_be_encoded_and_deep_values_are_taken_apart_without_recursion() {
        let mut deep = serde_json::json!([]);
        for _ in 0..1_000_000 {
            deep = Value::Array(vec![deep]);
        }
        assert_eq!(value_depth(&deep, MAX_DEPTH), MAX_DEPTH + 1);
        // Not json!({ "data": deep }): that copies deep by serializing it, recursively.
        let mut m = serde_json::Map::new();
        m.insert("data".into(), deep);
        let msg = Value::Object(m);
        let e = encode(&msg, 1 << 20).unwrap_err();
        assert!(!e.too_large && e.reason.contains("deeper"), "{}", e.reason);
        // Dropped the usual way, a million levels would overflow the stack.
        drop_deep(msg);
        let e = encode(&serde_json::json!({ "data": "x".repeat(100) }), 64).unwrap_err();
        assert!(e.too_large);
        assert_eq!(encode(&serde_json::json!({ "data": "x" }), 64).unwrap(), br#"{"data":"x"}"#.to_vec());
    }
}
