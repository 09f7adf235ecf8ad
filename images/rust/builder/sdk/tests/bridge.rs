//! The data bridge against the shared vectors (test/vectors/bridge.json of LogoMesh, at
//! /opt/logomesh/vectors in the builder image). A `serde_json::Value` holds no binary data
//! and no NaN or infinities: the vectors with `$bytes` or `$float` are not this SDK's to
//! write or read (docs/data-bridge.md); every other one must match byte for byte.

use logomesh::{decode_structured, encode_structured, frame_structured, unframe_structured, Value};

fn vectors() -> Vec<Value> {
    let file = std::env::var("LOGOMESH_VECTORS").unwrap_or_else(|_| "/opt/logomesh/vectors/bridge.json".into());
    let v: Value = serde_json_from(&std::fs::read_to_string(file).expect("the vectors file"));
    v["vectors"].as_array().expect("vectors").clone()
}

fn serde_json_from(s: &str) -> Value {
    logomesh::serde_json::from_str(s).expect("json")
}

/// The tagged value as a Value; None when it holds what a Value cannot ($bytes, $float).
fn from_tagged(v: &Value) -> Option<Value> {
    match v {
        Value::Array(a) => a.iter().map(from_tagged).collect::<Option<Vec<_>>>().map(Value::Array),
        Value::Object(o) => {
            if o.len() == 1 {
                if let Some(Value::String(s)) = o.get("$int") {
                    return Some(serde_json_from(s));
                }
                if o.contains_key("$float") || o.contains_key("$bytes") {
                    return None;
                }
            }
            let mut m = logomesh::serde_json::Map::new();
            for (k, x) in o {
                m.insert(k.clone(), from_tagged(x)?);
            }
            Some(Value::Object(m))
        }
        other => Some(other.clone()),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn every_representable_vector_encodes_byte_for_byte_and_decodes_back() {
    let all = vectors();
    assert!(all.len() > 10);
    let mut checked = 0;
    for v in &all {
        let value = match from_tagged(&v["value"]) {
            Some(x) => x,
            None => continue,
        };
        for (format, want) in v["encoded"].as_object().unwrap() {
            let want = want.as_str().unwrap();
            let got = encode_structured(&value, format).unwrap_or_else(|e| panic!("{} ({format}): {}", v["name"], e.message));
            assert_eq!(hex(&got), want, "{} ({format})", v["name"]);
            let back = decode_structured(&unhex(want), format).unwrap();
            assert_eq!(hex(&encode_structured(&back, format).unwrap()), want, "{} ({format}) decoded {back}", v["name"]);
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} vectors checked");
}

#[test]
fn frames_and_refuses_another_format() {
    let framed = frame_structured(&logomesh::json!({"a": [1, 2]}), "msgpack").unwrap();
    assert_eq!(&framed[..4], b"LMSD");
    let (v, f) = unframe_structured(&framed, None).unwrap();
    assert_eq!((v, f), (logomesh::json!({"a": [1, 2]}), "msgpack"));
    assert_eq!(unframe_structured(&framed, Some("json")).unwrap_err().code, "LM_SEGMENT");
    assert_eq!(encode_structured(&Value::Null, "yaml").unwrap_err().code, "LM_INVALID_ARGUMENT");
}
