//! Declared message types against test/vectors/protobuf-types.json (at /opt/logomesh/vectors
//! in the builder image): each value encodes to exactly the listed bytes and decodes to the
//! canonical proto3 JSON; each value that does not fit is LM_INVALID_ARGUMENT with exactly
//! the message every SDK gives.

use logomesh::{frame_message, frame_structured, json, unframe_message, ProtobufTypes, Value};
use std::path::Path;

fn load() -> (Value, ProtobufTypes) {
    let file = std::env::var("LOGOMESH_VECTORS").unwrap_or_else(|_| "/opt/logomesh/vectors/bridge.json".into());
    let dir = Path::new(&file).parent().expect("the vectors folder").to_path_buf();
    let doc: Value =
        logomesh::serde_json::from_str(&std::fs::read_to_string(dir.join("protobuf-types.json")).expect("the vectors file")).expect("json");
    let types = ProtobufTypes::load(dir.join(doc["descriptorSet"].as_str().unwrap()).to_str().unwrap()).expect("the descriptor set");
    (doc, types)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_vector_encodes_byte_for_byte_and_decodes_to_proto3_json() {
    let (doc, types) = load();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() > 5);
    for v in vectors {
        let t = v["type"].as_str().unwrap();
        let got = types
            .encode(t, &v["value"])
            .unwrap_or_else(|e| panic!("{}: {}", v["name"], e.message));
        assert_eq!(hex(&got), v["protobuf"].as_str().unwrap(), "{}", v["name"]);
        let back = types
            .decode(t, &unhex(v["protobuf"].as_str().unwrap()))
            .unwrap_or_else(|e| panic!("{}: {}", v["name"], e.message));
        assert_eq!(back, v["decoded"], "{}", v["name"]);
    }
}

#[test]
fn a_value_that_does_not_fit_is_refused_with_the_same_message() {
    let (doc, types) = load();
    let invalid = doc["invalid"].as_array().unwrap();
    assert!(invalid.len() > 5);
    for v in invalid {
        let err = types
            .encode(v["type"].as_str().unwrap(), &v["value"])
            .expect_err(v["name"].as_str().unwrap());
        assert_eq!(err.code, "LM_INVALID_ARGUMENT", "{}", v["name"]);
        assert_eq!(err.message, v["error"].as_str().unwrap(), "{}", v["name"]);
    }
}

#[test]
fn through_the_header_and_the_other_refusals() {
    let (doc, types) = load();
    let t = doc["vectors"][0]["type"].as_str().unwrap();
    let framed = frame_message(&types, t, &json!({"big": "9007199254740993"})).unwrap();
    assert_eq!(unframe_message(&framed, &types, t).unwrap(), json!({"big": "9007199254740993"}));
    let as_json = frame_structured(&json!(1), "json").unwrap();
    assert_eq!(unframe_message(&as_json, &types, t).unwrap_err().code, "LM_SEGMENT");
    assert_eq!(types.encode("no.such.Type", &json!({})).unwrap_err().code, "LM_INVALID_ARGUMENT");
    assert_eq!(types.decode(t, &[0xff, 0xff]).unwrap_err().code, "LM_INVALID_ARGUMENT");
    assert_eq!(
        types.encode(t, &json!({"small": "99999999999"})).unwrap_err().code,
        "LM_INVALID_ARGUMENT"
    );
    assert!(ProtobufTypes::from_bytes(b"\x0a\x05junk!").is_err());
    assert_eq!(
        types.message_names(),
        vec!["logomesh.vectors.v1.Point", "logomesh.vectors.v1.Sample"]
    );
}

/// A recursive type: bytes nested deeper than prost's limit (100) are refused, not a stack overflow.
#[test]
fn deep_nesting_from_a_hostile_writer_is_refused() {
    use prost::Message;
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet};
    let child = FieldDescriptorProto {
        name: Some("child".into()),
        number: Some(1),
        label: Some(Label::Optional as i32),
        r#type: Some(Type::Message as i32),
        type_name: Some(".t.Tree".into()),
        json_name: Some("child".into()),
        ..Default::default()
    };
    let tree = DescriptorProto {
        name: Some("Tree".into()),
        field: vec![child],
        ..Default::default()
    };
    let file = FileDescriptorProto {
        name: Some("t.proto".into()),
        package: Some("t".into()),
        message_type: vec![tree],
        syntax: Some("proto3".into()),
        ..Default::default()
    };
    let types = ProtobufTypes::from_bytes(&FileDescriptorSet { file: vec![file] }.encode_to_vec()).unwrap();
    let nested = |depth: usize| {
        let mut b: Vec<u8> = Vec::new();
        for _ in 0..depth {
            let mut outer = vec![0x0a];
            prost::encoding::encode_varint(b.len() as u64, &mut outer);
            outer.extend_from_slice(&b);
            b = outer;
        }
        b
    };
    let ok = types.decode("t.Tree", &nested(50)).unwrap();
    assert!(ok["child"]["child"].is_object());
    assert_eq!(types.encode("t.Tree", &ok).unwrap(), nested(50));
    let err = types.decode("t.Tree", &nested(100_000)).unwrap_err();
    assert_eq!(err.code, "LM_INVALID_ARGUMENT");
    assert!(err.message.contains("nested more than 100"), "{}", err.message);
}
