//! Declared protobuf message types for the data bridge (docs/data-bridge.md of LogoMesh,
//! "Declared message types"). prost has no dynamic messages and no reflection crate is
//! packaged in Debian, so this is prost's own wire primitives (`prost::encoding`) driven by
//! the descriptor set, which prost-types decodes: every scalar type, enums, nested messages,
//! repeated fields (packed as proto3 packs them), maps and oneofs (proto3 optional too).
//! Not supported: proto2 groups and extensions, and the special JSON forms of the
//! google.protobuf well-known types (a Timestamp is an ordinary message here).
//!
//! A value maps to a message the proto3 JSON way: field json names (or proto names), 64-bit
//! integers as decimal strings, bytes as base64, enums by name; decoding gives that canonical
//! JSON, fields at their default value omitted. Fields are written in field-number order,
//! map entries by key (deterministic serialization). A value that does not fit is
//! LM_INVALID_ARGUMENT, worded as in every SDK:
//! `protobuf <type>: <JSON path>: expected <what>, found <what>`.

use crate::protobuf_check::{check_message, mismatch};
use crate::Error;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet};
use serde_json::Value;
use std::collections::HashMap;

/// Larger descriptor sets are refused: a plugin's own types are a few KiB.
pub const MAX_DESCRIPTOR_SET_BYTES: usize = 1024 * 1024;

/// The message types of one descriptor set.
pub struct ProtobufTypes {
    pub(crate) messages: HashMap<String, DescriptorProto>,
    pub(crate) enums: HashMap<String, EnumDescriptorProto>,
}

impl ProtobufTypes {
    /// Reads a binary FileDescriptorSet (`protoc --include_imports --descriptor_set_out`).
    pub fn from_bytes(data: &[u8]) -> Result<ProtobufTypes, Error> {
        if data.len() > MAX_DESCRIPTOR_SET_BYTES {
            return Err(Error::invalid_argument(format!(
                "the descriptor set: expected a FileDescriptorSet of at most {MAX_DESCRIPTOR_SET_BYTES} bytes, found {} bytes",
                data.len()
            )));
        }
        let fds = FileDescriptorSet::decode(data).map_err(|e| {
            Error::invalid_argument(format!("the descriptor set: expected a FileDescriptorSet (protoc --include_imports --descriptor_set_out), found bytes that are not one ({e})"))
        })?;
        let mut t = ProtobufTypes {
            messages: HashMap::new(),
            enums: HashMap::new(),
        };
        for f in &fds.file {
            let prefix = f.package().to_string();
            for e in &f.enum_type {
                t.enums.insert(join(&prefix, e.name()), e.clone());
            }
            t.add_messages(&prefix, &f.message_type);
        }
        // Every type a field names must be in the set (protoc --include_imports puts them there).
        for m in t.messages.values() {
            for f in &m.field {
                let name = f.type_name().trim_start_matches('.');
                let known = match f.r#type() {
                    Type::Message | Type::Group => t.messages.contains_key(name),
                    Type::Enum => t.enums.contains_key(name),
                    _ => true,
                };
                if !known {
                    return Err(Error::invalid_argument(format!("the descriptor set: expected a FileDescriptorSet with every type its fields name, found no {name} (protoc --include_imports)")));
                }
            }
        }
        Ok(t)
    }

    /// Reads a descriptor set file, such as one in the plugin's folder.
    pub fn load(path: &str) -> Result<ProtobufTypes, Error> {
        let data = std::fs::read(path).map_err(|e| Error::invalid_argument(format!("{path}: {e}")))?;
        ProtobufTypes::from_bytes(&data)
    }

    fn add_messages(&mut self, prefix: &str, messages: &[DescriptorProto]) {
        for m in messages {
            let name = join(prefix, m.name());
            for e in &m.enum_type {
                self.enums.insert(join(&name, e.name()), e.clone());
            }
            self.add_messages(&name, &m.nested_type);
            self.messages.insert(name, m.clone());
        }
    }

    /// The fully qualified names of its message types (map entries left out), sorted.
    pub fn message_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .messages
            .iter()
            .filter(|(_, m)| !is_map_entry(m))
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    pub(crate) fn message(&self, type_name: &str) -> Result<&DescriptorProto, Error> {
        self.messages.get(type_name).filter(|m| !is_map_entry(m)).ok_or_else(|| {
            let shown: String = type_name.chars().take(128).collect();
            Error::invalid_argument(format!(
                "protobuf: expected a message type the descriptor set declares, found '{shown}'"
            ))
        })
    }

    pub(crate) fn field_message(&self, f: &FieldDescriptorProto) -> &DescriptorProto {
        &self.messages[f.type_name().trim_start_matches('.')]
    }

    pub(crate) fn field_enum(&self, f: &FieldDescriptorProto) -> &EnumDescriptorProto {
        &self.enums[f.type_name().trim_start_matches('.')]
    }

    /// The map entry type of a map field, or None.
    pub(crate) fn map_entry(&self, f: &FieldDescriptorProto) -> Option<&DescriptorProto> {
        if f.label() != Label::Repeated || f.r#type() != Type::Message {
            return None;
        }
        Some(self.field_message(f)).filter(|m| is_map_entry(m))
    }

    /// `value` (proto3 JSON) as the binary message `type_name`.
    pub fn encode(&self, type_name: &str, value: &Value) -> Result<Vec<u8>, Error> {
        let md = self.message(type_name)?;
        check_message(self, md, type_name, value, "", type_name)?;
        let mut buf = Vec::new();
        crate::protobuf_wire::encode_message(self, md, value, "", type_name, &mut buf)?;
        Ok(buf)
    }

    /// The message `type_name` in `data`, as proto3 JSON.
    pub fn decode(&self, type_name: &str, data: &[u8]) -> Result<Value, Error> {
        let md = self.message(type_name)?;
        crate::protobuf_decode::decode_message(self, md, data, 0).map_err(|e| {
            Error::invalid_argument(format!(
                "protobuf {type_name}: expected the bytes of a {type_name}, found bytes that are not one ({})",
                e.message()
            ))
        })
    }
}

pub(crate) fn is_map_entry(m: &DescriptorProto) -> bool {
    m.options.as_ref().map(|o| o.map_entry()).unwrap_or(false)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The name a field has in proto3 JSON (protoc fills json_name in; lowerCamelCase otherwise).
pub(crate) fn json_name(f: &FieldDescriptorProto) -> String {
    if let Some(j) = &f.json_name {
        return j.clone();
    }
    let mut out = String::new();
    let mut upper = false;
    for c in f.name().chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The proto file's name of a field's type: `int32`, `logomesh.v1.Point`, ...
pub(crate) fn describe(f: &FieldDescriptorProto) -> String {
    match f.r#type() {
        Type::Message | Type::Group | Type::Enum => f.type_name().trim_start_matches('.').to_string(),
        t => scalar_name(t).to_string(),
    }
}

pub(crate) fn scalar_name(t: Type) -> &'static str {
    match t {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        _ => "scalar",
    }
}

/// A value that passed the shape check but that the wire cannot take (out of range, bad base64).
pub(crate) fn out_of_range(root: &str, path: &str, f: &FieldDescriptorProto, v: &Value) -> Error {
    mismatch(root, path, &format!("{} (in range)", describe(f)), v)
}
