//! Does a proto3 JSON value fit a message type? The same check, with the same words, as every
//! other SDK's (docs/data-bridge.md): unknown fields, JSON kinds, enum names.

use crate::protobuf_types::{describe, json_name, scalar_name, ProtobufTypes};
use crate::Error;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto};
use serde_json::Value;

/// The found part of the message, worded alike in every SDK.
pub(crate) fn shown(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b} (boolean)"),
        Value::Number(n) => {
            let s = match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i.to_string(),
                (_, Some(u), _) => u.to_string(),
                (_, _, Some(f)) => crate::bridge::js_number(f),
                _ => n.to_string(),
            };
            format!("{s} (number)")
        }
        Value::String(s) => {
            let short = if s.chars().count() > 64 {
                format!("{}...", s.chars().take(64).collect::<String>())
            } else {
                s.clone()
            };
            format!("{} (string)", Value::String(short))
        }
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

pub(crate) fn mismatch(root: &str, path: &str, expected: &str, found: &Value) -> Error {
    let path = if path.is_empty() { "/" } else { path };
    Error::invalid_argument(format!("protobuf {root}: {path}: expected {expected}, found {}", shown(found)))
}

/// The field of `md` a JSON key names (json name or proto name).
pub(crate) fn field_named<'a>(md: &'a DescriptorProto, key: &str) -> Option<&'a FieldDescriptorProto> {
    md.field.iter().find(|f| json_name(f) == key || f.name() == key)
}

pub(crate) fn check_message(
    types: &ProtobufTypes,
    md: &DescriptorProto,
    full_name: &str,
    v: &Value,
    path: &str,
    root: &str,
) -> Result<(), Error> {
    if full_name.starts_with("google.protobuf.") {
        return Ok(());
    }
    let obj = match v {
        Value::Object(o) => o,
        _ => return Err(mismatch(root, path, &format!("an object (message {full_name})"), v)),
    };
    for (key, x) in obj {
        let at = format!("{path}/{key}");
        let f = field_named(md, key).ok_or_else(|| mismatch(root, &at, &format!("a field of {full_name}"), &Value::String(key.clone())))?;
        if x.is_null() {
            continue; // proto3 JSON: null is the field's default
        }
        if let Some(entry) = types.map_entry(f) {
            let vf = &entry.field[1];
            let m = x
                .as_object()
                .ok_or_else(|| mismatch(root, &at, &format!("an object (map of {})", describe(vf)), x))?;
            for (k, e) in m {
                check_single(types, vf, e, &format!("{at}/{k}"), root)?;
            }
        } else if f.label() == Label::Repeated {
            let l = x
                .as_array()
                .ok_or_else(|| mismatch(root, &at, &format!("a list (repeated {})", describe(f)), x))?;
            for (i, e) in l.iter().enumerate() {
                check_single(types, f, e, &format!("{at}/{i}"), root)?;
            }
        } else {
            check_single(types, f, x, &at, root)?;
        }
    }
    for (i, oneof) in md.oneof_decl.iter().enumerate() {
        let set: Vec<String> = md
            .field
            .iter()
            .filter(|f| f.oneof_index == Some(i as i32))
            .filter(|f| {
                [json_name(f), f.name().to_string()]
                    .iter()
                    .any(|k| obj.get(k).map(|x| !x.is_null()).unwrap_or(false))
            })
            .map(json_name)
            .collect();
        if set.len() > 1 {
            let path = if path.is_empty() { "/" } else { path };
            return Err(Error::invalid_argument(format!(
                "protobuf {root}: {path}: expected at most one field of oneof {}, found {}",
                oneof.name(),
                set.join(" and ")
            )));
        }
    }
    Ok(())
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64() || n.is_u64() || n.as_f64().map(|f| f.fract() == 0.0).unwrap_or(false),
        Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

fn check_single(types: &ProtobufTypes, f: &FieldDescriptorProto, v: &Value, path: &str, root: &str) -> Result<(), Error> {
    let t = f.r#type();
    let ok = match t {
        Type::Message | Type::Group => {
            return check_message(types, types.field_message(f), f.type_name().trim_start_matches('.'), v, path, root)
        }
        Type::Enum => {
            let e = types.field_enum(f);
            let fits = match v {
                Value::String(s) => e.value.iter().any(|x| x.name() == s),
                Value::Number(_) => is_integer(v),
                _ => false,
            };
            if !fits {
                let names: Vec<&str> = e.value.iter().map(|x| x.name()).collect();
                return Err(mismatch(
                    root,
                    path,
                    &format!("enum {} (one of {}, or a number)", describe(f), names.join(", ")),
                    v,
                ));
            }
            return Ok(());
        }
        Type::Bool => v.is_boolean(),
        Type::String | Type::Bytes => v.is_string(),
        Type::Double | Type::Float => v.is_number() || v.is_string(),
        _ => is_integer(v),
    };
    if ok {
        return Ok(());
    }
    let expected = match t {
        Type::Bool => "bool (true or false)".to_string(),
        Type::String => "string".to_string(),
        Type::Bytes => "bytes (a base64 string)".to_string(),
        Type::Double | Type::Float => format!("{} (a number)", scalar_name(t)),
        _ => format!("{} (an integer or a decimal string)", scalar_name(t)),
    };
    Err(mismatch(root, path, &expected, v))
}
