//! A message's wire form back to canonical proto3 JSON, with prost's wire primitives
//! (`prost::encoding`) driven by the descriptor (the other way: protobuf_wire.rs).

use crate::protobuf_types::{json_name, ProtobufTypes};
use crate::protobuf_wire::Scalar;
use crate::Error;
use prost::bytes::Buf;
use prost::encoding::{self, decode_key, decode_varint, skip_field, DecodeContext, WireType};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;

type Decoded = Result<Value, Error>;

fn wire_error(e: impl std::fmt::Display) -> Error {
    Error::invalid_argument(e.to_string())
}

fn number_f64(x: f64) -> Value {
    if x.is_nan() {
        Value::String("NaN".into())
    } else if x.is_infinite() {
        Value::String(if x > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        Number::from_f64(x).map(Value::Number).unwrap_or(Value::Null)
    }
}

fn scalar_json(types: &ProtobufTypes, f: &FieldDescriptorProto, s: Scalar) -> Value {
    match s {
        Scalar::I32(x) if f.r#type() == Type::Enum => types
            .field_enum(f)
            .value
            .iter()
            .find(|e| e.number() == x)
            .map(|e| Value::String(e.name().to_string()))
            .unwrap_or_else(|| Value::from(x)),
        Scalar::I32(x) => Value::from(x),
        Scalar::U32(x) => Value::from(x),
        Scalar::I64(x) => Value::String(x.to_string()),
        Scalar::U64(x) => Value::String(x.to_string()),
        // A float as its shortest float32 digits, as the other SDKs write it.
        Scalar::F32(x) if x.is_finite() => format!("{x}").parse::<f64>().map(number_f64).unwrap_or(Value::Null),
        Scalar::F32(x) => number_f64(x as f64),
        Scalar::F64(x) => number_f64(x),
        Scalar::Bool(x) => Value::Bool(x),
    }
}

/// Every scalar of one occurrence of a field (a packed run gives several).
fn decode_scalars(t: Type, wt: WireType, buf: &mut &[u8]) -> Result<Vec<Scalar>, Error> {
    macro_rules! get {
        ($module:ident, $variant:ident) => {{
            let mut v = Vec::new();
            encoding::$module::merge_repeated(wt, &mut v, buf, DecodeContext::default()).map_err(wire_error)?;
            v.into_iter().map(Scalar::$variant).collect()
        }};
    }
    Ok(match t {
        Type::Int32 | Type::Enum => get!(int32, I32),
        Type::Sint32 => get!(sint32, I32),
        Type::Sfixed32 => get!(sfixed32, I32),
        Type::Int64 => get!(int64, I64),
        Type::Sint64 => get!(sint64, I64),
        Type::Sfixed64 => get!(sfixed64, I64),
        Type::Uint32 => get!(uint32, U32),
        Type::Fixed32 => get!(fixed32, U32),
        Type::Uint64 => get!(uint64, U64),
        Type::Fixed64 => get!(fixed64, U64),
        Type::Float => get!(float, F32),
        Type::Double => get!(double, F64),
        Type::Bool => get!(bool, Bool),
        _ => Vec::new(),
    })
}

fn sub_slice<'a>(wt: WireType, buf: &mut &'a [u8]) -> Result<&'a [u8], Error> {
    if wt != WireType::LengthDelimited {
        return Err(Error::invalid_argument(format!(
            "expected a length-delimited field, found wire type {wt:?}"
        )));
    }
    let len = decode_varint(buf).map_err(wire_error)? as usize;
    if len > buf.len() {
        return Err(Error::invalid_argument("a length past the end of the buffer"));
    }
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Ok(head)
}

/// Each value of one occurrence of field `f`, as JSON.
fn decode_values(types: &ProtobufTypes, f: &FieldDescriptorProto, wt: WireType, buf: &mut &[u8], depth: u32) -> Result<Vec<Value>, Error> {
    Ok(match f.r#type() {
        Type::Message => vec![decode_message(types, types.field_message(f), sub_slice(wt, buf)?, depth + 1)?],
        Type::String => {
            let mut s = String::new();
            encoding::string::merge(wt, &mut s, buf, DecodeContext::default()).map_err(wire_error)?;
            vec![Value::String(s)]
        }
        Type::Bytes => {
            let mut b: Vec<u8> = Vec::new();
            encoding::bytes::merge(wt, &mut b, buf, DecodeContext::default()).map_err(wire_error)?;
            vec![Value::String(base64::encode(b))]
        }
        Type::Group => return Err(Error::invalid_argument("groups are not supported")),
        t => decode_scalars(t, wt, buf)?.into_iter().map(|s| scalar_json(types, f, s)).collect(),
    })
}

/// Is a decoded value its field's default (proto3 JSON leaves those out)?
fn is_default(types: &ProtobufTypes, f: &FieldDescriptorProto, v: &Value) -> bool {
    match f.r#type() {
        Type::Float | Type::Double => v.as_f64() == Some(0.0) && !v.to_string().starts_with('-'),
        t => *v == decode_default(types, f, t),
    }
}

/// The map entry's key and value, as JSON (the key as the string proto3 JSON gives it).
fn decode_entry(types: &ProtobufTypes, entry: &DescriptorProto, mut body: &[u8], depth: u32) -> Result<(String, Value), Error> {
    let (kf, vf) = (&entry.field[0], &entry.field[1]);
    let mut key = Value::Null;
    let mut value = Value::Null;
    while body.has_remaining() {
        let (tag, wt) = decode_key(&mut body).map_err(wire_error)?;
        match tag {
            1 => key = decode_values(types, kf, wt, &mut body, depth)?.pop().unwrap_or(Value::Null),
            2 => value = decode_values(types, vf, wt, &mut body, depth)?.pop().unwrap_or(Value::Null),
            _ => skip_field(wt, tag, &mut body, DecodeContext::default()).map_err(wire_error)?,
        }
    }
    let key = match key {
        Value::String(s) => s,
        Value::Null => match kf.r#type() {
            Type::String => String::new(),
            Type::Bool => "false".into(),
            _ => "0".into(),
        },
        other => other.to_string(),
    };
    if value.is_null() {
        value = match vf.r#type() {
            Type::Message => Value::Object(Map::new()),
            t => decode_default(types, vf, t),
        };
    }
    Ok((key, value))
}

fn decode_default(types: &ProtobufTypes, f: &FieldDescriptorProto, t: Type) -> Value {
    match t {
        Type::String | Type::Bytes => Value::String(String::new()),
        Type::Bool => Value::Bool(false),
        Type::Int64 | Type::Sint64 | Type::Sfixed64 | Type::Uint64 | Type::Fixed64 => Value::String("0".into()),
        Type::Enum => scalar_json(types, f, Scalar::I32(0)),
        _ => Value::from(0),
    }
}

/// Nested messages deeper than this are refused, as prost refuses them: a hostile writer's
/// bytes for a recursive type must not overflow the reader's stack.
const MAX_DEPTH: u32 = 100;

/// The message `md` in `data`, as canonical proto3 JSON.
pub(crate) fn decode_message(types: &ProtobufTypes, md: &DescriptorProto, data: &[u8], depth: u32) -> Decoded {
    if depth > MAX_DEPTH {
        return Err(Error::invalid_argument(format!("messages nested more than {MAX_DEPTH} deep")));
    }
    let mut buf = data;
    let mut fields: BTreeMap<i32, Value> = BTreeMap::new();
    while buf.has_remaining() {
        let (tag, wt) = decode_key(&mut buf).map_err(wire_error)?;
        let f = match md.field.iter().find(|f| f.number() as u32 == tag) {
            Some(f) => f,
            None => {
                skip_field(wt, tag, &mut buf, DecodeContext::default()).map_err(wire_error)?;
                continue;
            }
        };
        if let Some(entry) = types.map_entry(f) {
            let (k, v) = decode_entry(types, entry, sub_slice(wt, &mut buf)?, depth)?;
            if let Value::Object(m) = fields.entry(f.number()).or_insert_with(|| Value::Object(Map::new())) {
                m.insert(k, v);
            }
        } else if f.label() == Label::Repeated {
            let values = decode_values(types, f, wt, &mut buf, depth)?;
            if let Value::Array(a) = fields.entry(f.number()).or_insert_with(|| Value::Array(Vec::new())) {
                a.extend(values);
            }
        } else {
            let v = decode_values(types, f, wt, &mut buf, depth)?.pop().unwrap_or(Value::Null);
            if let Some(o) = f.oneof_index {
                // The last member of a oneof on the wire wins.
                let others: Vec<i32> = md
                    .field
                    .iter()
                    .filter(|g| g.oneof_index == Some(o) && g.number() != f.number())
                    .map(|g| g.number())
                    .collect();
                others.iter().for_each(|n| {
                    fields.remove(n);
                });
            }
            match (fields.get_mut(&f.number()), v) {
                // A message seen twice is merged, as protobuf merges them.
                (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
                (_, v) => {
                    fields.insert(f.number(), v);
                }
            }
        }
    }
    let mut out = Map::new();
    for f in &md.field {
        if let Some(v) = fields.remove(&f.number()) {
            let skip = if f.label() == Label::Repeated {
                v.as_array().map(|a| a.is_empty()).unwrap_or(false)
            } else {
                // Oneof members (proto3 optional too) and messages have presence.
                f.oneof_index.is_none() && f.r#type() != Type::Message && is_default(types, f, &v)
            };
            if !skip {
                out.insert(json_name(f), v);
            }
        }
    }
    Ok(Value::Object(out))
}
