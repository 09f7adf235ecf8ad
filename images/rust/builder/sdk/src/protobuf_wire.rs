//! A message's wire form from proto3 JSON, with prost's wire primitives (`prost::encoding`)
//! driven by the descriptor (protobuf_types.rs says what is supported; protobuf_decode.rs
//! reads it back).

use crate::protobuf_types::{json_name, out_of_range, ProtobufTypes};
use crate::Error;
use prost::encoding::{self, encode_key, encode_varint, WireType};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto};
use serde_json::{Map, Value};

/// One scalar, converted from JSON for its field's type.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    I32(i32),
    I64(i64),
    U32(u32),
    U64(u64),
    F32(f32),
    F64(f64),
    Bool(bool),
}

fn to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn to_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn to_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    }
}

fn scalar_of(types: &ProtobufTypes, f: &FieldDescriptorProto, v: &Value) -> Option<Scalar> {
    Some(match f.r#type() {
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => Scalar::I32(i32::try_from(to_i64(v)?).ok()?),
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => Scalar::I64(to_i64(v)?),
        Type::Uint32 | Type::Fixed32 => Scalar::U32(u32::try_from(to_u64(v)?).ok()?),
        Type::Uint64 | Type::Fixed64 => Scalar::U64(to_u64(v)?),
        Type::Float => Scalar::F32(to_f64(v)? as f32),
        Type::Double => Scalar::F64(to_f64(v)?),
        Type::Bool => Scalar::Bool(v.as_bool()?),
        Type::Enum => match v {
            Value::String(s) => Scalar::I32(types.field_enum(f).value.iter().find(|e| e.name() == s)?.number()),
            other => Scalar::I32(i32::try_from(to_i64(other)?).ok()?),
        },
        _ => return None,
    })
}

fn is_zero(s: Scalar) -> bool {
    match s {
        Scalar::I32(x) => x == 0,
        Scalar::I64(x) => x == 0,
        Scalar::U32(x) => x == 0,
        Scalar::U64(x) => x == 0,
        Scalar::F32(x) => x == 0.0 && x.is_sign_positive(),
        Scalar::F64(x) => x == 0.0 && x.is_sign_positive(),
        Scalar::Bool(x) => !x,
    }
}

/// Writes each scalar with prost's encoder for the field's type: one tagged value each, or
/// all of them packed under one tag.
fn encode_scalars(t: Type, tag: u32, values: &[Scalar], packed: bool, buf: &mut Vec<u8>) {
    macro_rules! put {
        ($module:ident, $variant:ident) => {{
            let v: Vec<_> = values
                .iter()
                .filter_map(|s| if let Scalar::$variant(x) = s { Some(*x) } else { None })
                .collect();
            if packed {
                encoding::$module::encode_packed(tag, &v, buf)
            } else {
                v.iter().for_each(|x| encoding::$module::encode(tag, x, buf))
            }
        }};
    }
    match t {
        Type::Int32 | Type::Enum => put!(int32, I32),
        Type::Sint32 => put!(sint32, I32),
        Type::Sfixed32 => put!(sfixed32, I32),
        Type::Int64 => put!(int64, I64),
        Type::Sint64 => put!(sint64, I64),
        Type::Sfixed64 => put!(sfixed64, I64),
        Type::Uint32 => put!(uint32, U32),
        Type::Fixed32 => put!(fixed32, U32),
        Type::Uint64 => put!(uint64, U64),
        Type::Fixed64 => put!(fixed64, U64),
        Type::Float => put!(float, F32),
        Type::Double => put!(double, F64),
        Type::Bool => put!(bool, Bool),
        _ => {}
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let trimmed = s.trim_end_matches('=');
    base64::decode_config(trimmed, base64::STANDARD_NO_PAD)
        .or_else(|_| base64::decode_config(trimmed, base64::URL_SAFE_NO_PAD))
        .ok()
}

fn length_delimited(tag: u32, body: &[u8], buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(body.len() as u64, buf);
    buf.extend_from_slice(body);
}

/// One value of field `f` with its tag; `always`: written even at its default (repeated
/// elements, map entries, fields with presence).
fn encode_one(
    types: &ProtobufTypes,
    f: &FieldDescriptorProto,
    tag: u32,
    v: &Value,
    always: bool,
    at: &str,
    root: &str,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    match f.r#type() {
        Type::Message | Type::Group => {
            let mut body = Vec::new();
            encode_message(types, types.field_message(f), v, at, root, &mut body)?;
            length_delimited(tag, &body, buf);
        }
        Type::String => {
            let s = v.as_str().ok_or_else(|| out_of_range(root, at, f, v))?;
            if always || !s.is_empty() {
                encoding::string::encode(tag, &s.to_string(), buf);
            }
        }
        Type::Bytes => {
            let b = v.as_str().and_then(decode_base64).ok_or_else(|| out_of_range(root, at, f, v))?;
            if always || !b.is_empty() {
                encoding::bytes::encode(tag, &b, buf);
            }
        }
        t => {
            let s = scalar_of(types, f, v).ok_or_else(|| out_of_range(root, at, f, v))?;
            if always || !is_zero(s) {
                encode_scalars(t, tag, &[s], false, buf);
            }
        }
    }
    Ok(())
}

/// Map keys in the order Go and Python write them: integers by value, strings by bytes.
fn sorted_entries<'a>(kf: &FieldDescriptorProto, m: &'a Map<String, Value>) -> Vec<(&'a String, &'a Value)> {
    let mut entries: Vec<_> = m.iter().collect();
    match kf.r#type() {
        Type::String | Type::Bool => entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes())),
        _ => entries.sort_by_key(|(k, _)| k.parse::<i128>().unwrap_or(0)),
    }
    entries
}

/// `v` (a checked proto3 JSON object) as message `md`, fields in field-number order.
pub(crate) fn encode_message(
    types: &ProtobufTypes,
    md: &DescriptorProto,
    v: &Value,
    path: &str,
    root: &str,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    let obj = match v.as_object() {
        Some(o) => o,
        None => return Ok(()),
    };
    let mut fields: Vec<&FieldDescriptorProto> = md.field.iter().collect();
    fields.sort_by_key(|f| f.number());
    for f in fields {
        let key = if obj.contains_key(&json_name(f)) {
            json_name(f)
        } else {
            f.name().to_string()
        };
        let x = match obj.get(&key) {
            None | Some(Value::Null) => continue,
            Some(x) => x,
        };
        let at = format!("{path}/{key}");
        let tag = f.number() as u32;
        if let Some(entry) = types.map_entry(f) {
            let (kf, vf) = (&entry.field[0], &entry.field[1]);
            let empty = Map::new();
            for (k, e) in sorted_entries(kf, x.as_object().unwrap_or(&empty)) {
                let key_value = if kf.r#type() == Type::Bool {
                    Value::Bool(k == "true")
                } else {
                    Value::String(k.clone())
                };
                let mut body = Vec::new();
                encode_one(types, kf, 1, &key_value, true, &format!("{at}/{k}"), root, &mut body)?;
                encode_one(types, vf, 2, e, true, &format!("{at}/{k}"), root, &mut body)?;
                length_delimited(tag, &body, buf);
            }
        } else if f.label() == Label::Repeated {
            let list = x.as_array().map(|a| a.as_slice()).unwrap_or(&[]);
            let packable = !matches!(f.r#type(), Type::String | Type::Bytes | Type::Message | Type::Group);
            let packed = packable && f.options.as_ref().and_then(|o| o.packed) != Some(false);
            if packed {
                let mut values = Vec::with_capacity(list.len());
                for (i, e) in list.iter().enumerate() {
                    values.push(scalar_of(types, f, e).ok_or_else(|| out_of_range(root, &format!("{at}/{i}"), f, e))?);
                }
                if !values.is_empty() {
                    encode_scalars(f.r#type(), tag, &values, true, buf);
                }
            } else {
                for (i, e) in list.iter().enumerate() {
                    encode_one(types, f, tag, e, true, &format!("{at}/{i}"), root, buf)?;
                }
            }
        } else {
            // Oneof members (proto3 optional too) and messages have presence: written even at their default.
            let presence = f.oneof_index.is_some() || matches!(f.r#type(), Type::Message | Type::Group);
            encode_one(types, f, tag, x, presence, &at, root, buf)?;
        }
    }
    Ok(())
}
