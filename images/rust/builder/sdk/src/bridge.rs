//! The data bridge (docs/data-bridge.md of LogoMesh): a `serde_json::Value` in `json`,
//! `msgpack` (rmp-serde) or `protobuf` (a `google.protobuf.Value`, prost-types), byte for
//! byte as every other SDK writes it, behind a 16-byte header: `LMSD`, version 1, the format
//! (1 json, 2 msgpack, 3 protobuf), two zero bytes, the payload's length (u64, little-endian).
//! Keys are in code point order (`serde_json::Map` is sorted). A `Value` holds no binary data
//! and no NaN or infinities, so this SDK neither writes nor reads those (msgpack `bin`, the
//! non-finite doubles); integers up to 64 bits are exact in msgpack.

use crate::{Error, ProtobufTypes};
use prost::Message;
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;

const HEADER_BYTES: usize = 16;

fn format_code(format: &str) -> Result<u8, Error> {
    match format {
        "json" => Ok(1),
        "msgpack" => Ok(2),
        "protobuf" => Ok(3),
        other => Err(Error::invalid_argument(format!("format '{other}' is not one of json, msgpack, protobuf"))),
    }
}

/// A double as JavaScript's JSON.stringify writes it (the form every SDK agrees on):
/// positional between 1e-7 and 1e21, else `d.ddde+XX`, always the shortest round trip.
pub(crate) fn js_number(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let e = format!("{:e}", x); // shortest round-trip digits, e.g. "-1.5e300", "3.14159e0"
    let (mantissa, exp) = e.split_at(e.find('e').unwrap_or(e.len()));
    let exp: i32 = exp.trim_start_matches('e').parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if negative { "-" } else { "" };
    if (-6..21).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        format!("{sign}{m}e{}{exp}", if exp >= 0 { "+" } else { "" })
    }
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => out.push_str(&u.to_string()),
            (_, Some(i), _) => out.push_str(&i.to_string()),
            (_, _, Some(f)) => out.push_str(&js_number(f)),
            _ => out.push_str("null"),
        },
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_json(x, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn to_pb(v: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue { values: a.iter().map(to_pb).collect() }),
        Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o.iter().map(|(k, x)| (k.clone(), to_pb(x))).collect::<BTreeMap<_, _>>(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

fn from_pb(v: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &v.kind {
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(f)) => Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(from_pb).collect()),
        Some(Kind::StructValue(s)) => Value::Object(s.fields.iter().map(|(k, x)| (k.clone(), from_pb(x))).collect::<Map<_, _>>()),
        _ => Value::Null,
    }
}

/// `value`'s payload in `format` (no header).
pub fn encode_structured(value: &Value, format: &str) -> Result<Vec<u8>, Error> {
    match format_code(format)? {
        1 => {
            let mut s = String::new();
            write_json(value, &mut s);
            Ok(s.into_bytes())
        }
        2 => rmp_serde::to_vec_named(value).map_err(|e| Error::invalid_argument(format!("msgpack: {e}"))),
        _ => Ok(to_pb(value).encode_to_vec()),
    }
}

pub fn decode_structured(payload: &[u8], format: &str) -> Result<Value, Error> {
    match format_code(format)? {
        1 => serde_json::from_slice(payload).map_err(|e| Error::invalid_argument(format!("not json: {e}"))),
        2 => rmp_serde::from_slice(payload).map_err(|e| Error::invalid_argument(format!("not msgpack this SDK reads (binary data and NaN have no serde_json::Value): {e}"))),
        _ => prost_types::Value::decode(payload)
            .map(|v| from_pb(&v))
            .map_err(|e| Error::invalid_argument(format!("not a google.protobuf.Value: {e}"))),
    }
}

/// The header and payload, as written into a segment.
pub fn frame_structured(value: &Value, format: &str) -> Result<Vec<u8>, Error> {
    frame_payload(&encode_structured(value, format)?, format_code(format)?)
}

/// `value` as the declared message `type_name` of `types` (format protobuf), with the header.
pub fn frame_message(types: &ProtobufTypes, type_name: &str, value: &Value) -> Result<Vec<u8>, Error> {
    frame_payload(&types.encode(type_name, value)?, 3)
}

/// The declared message `type_name` a structured segment's bytes hold (its header must say protobuf).
pub fn unframe_message(b: &[u8], types: &ProtobufTypes, type_name: &str) -> Result<Value, Error> {
    let (payload, _) = unframe_payload(b, Some("protobuf"))?;
    types.decode(type_name, payload)
}

fn frame_payload(payload: &[u8], code: u8) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(b"LMSD");
    out.push(1);
    out.push(code);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// The value a structured segment's bytes hold, and its format; `format`, when given, must match.
pub fn unframe_structured(b: &[u8], format: Option<&str>) -> Result<(Value, &'static str), Error> {
    let (payload, name) = unframe_payload(b, format)?;
    Ok((decode_structured(payload, name)?, name))
}

fn unframe_payload<'a>(b: &'a [u8], format: Option<&str>) -> Result<(&'a [u8], &'static str), Error> {
    if b.len() < HEADER_BYTES || &b[..4] != b"LMSD" || b[4] != 1 {
        return Err(Error::new("LM_SEGMENT", "the segment holds no structured data (no LMSD header)"));
    }
    let name = match b[5] {
        1 => "json",
        2 => "msgpack",
        3 => "protobuf",
        n => return Err(Error::new("LM_SEGMENT", format!("the segment's header names an unknown format {n}"))),
    };
    if let Some(f) = format {
        if f != name {
            return Err(Error::new("LM_SEGMENT", format!("the segment holds {name}, not {f}")));
        }
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&b[8..16]);
    let n = u64::from_le_bytes(len) as usize;
    if n > b.len() - HEADER_BYTES {
        return Err(Error::new("LM_SEGMENT", format!("the header says {n} bytes of data; the segment has {}", b.len() - HEADER_BYTES)));
    }
    Ok((&b[HEADER_BYTES..HEADER_BYTES + n], name))
}

#[cfg(test)]
mod tests {
    use super::js_number;

    #[test]
    fn numbers_as_javascript_writes_them() {
        for (x, s) in [(3.14159, "3.14159"), (-0.5, "-0.5"), (1e-300, "1e-300"), (1.5e300, "1.5e+300"), (1e21, "1e+21"), (123456.0, "123456"), (1e-7, "1e-7"), (1.5e-6, "0.0000015")] {
            assert_eq!(js_number(x), s, "{x}");
        }
    }
}
