package logomesh

import (
	"encoding/json"
	"os"
	"sort"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Declared protobuf message types for the data bridge (docs/data-bridge.md of LogoMesh,
// "Declared message types"): the messages of a binary FileDescriptorSet (protoc
// --include_imports --descriptor_set_out) through protodesc, dynamicpb and protojson. A
// value maps to a message the proto3 JSON way: field json names (or proto names), 64-bit
// integers as decimal strings, bytes as base64, enums by name; decoding gives that canonical
// JSON, fields at their default value omitted. A value that does not fit the type is
// LM_INVALID_ARGUMENT, worded as in every SDK:
// "protobuf <type>: <JSON path>: expected <what>, found <what>".

// MaxDescriptorSetBytes bounds a descriptor set: a plugin's own types are a few KiB.
const MaxDescriptorSetBytes = 1024 * 1024

// ProtobufTypes holds the message types of one descriptor set.
type ProtobufTypes struct {
	files *protoregistry.Files
}

// NewProtobufTypes reads a binary FileDescriptorSet.
func NewProtobufTypes(data []byte) (*ProtobufTypes, error) {
	if len(data) > MaxDescriptorSetBytes {
		return nil, Errorf(CodeInvalidArgument, "the descriptor set: expected a FileDescriptorSet of at most %d bytes, found %d bytes", MaxDescriptorSetBytes, len(data))
	}
	var fds descriptorpb.FileDescriptorSet
	err := proto.Unmarshal(data, &fds)
	var files *protoregistry.Files
	if err == nil {
		files, err = protodesc.NewFiles(&fds)
	}
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "the descriptor set: expected a FileDescriptorSet (protoc --include_imports --descriptor_set_out), found bytes that are not one (%v)", err)
	}
	return &ProtobufTypes{files: files}, nil
}

// LoadProtobufTypes reads a descriptor set file, such as one in the plugin's folder.
func LoadProtobufTypes(path string) (*ProtobufTypes, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "%s: %v", path, err)
	}
	return NewProtobufTypes(data)
}

// MessageNames lists the fully qualified names of its message types, sorted.
func (t *ProtobufTypes) MessageNames() []string {
	var names []string
	var add func(ms protoreflect.MessageDescriptors)
	add = func(ms protoreflect.MessageDescriptors) {
		for i := 0; i < ms.Len(); i++ {
			if !ms.Get(i).IsMapEntry() {
				names = append(names, string(ms.Get(i).FullName()))
			}
			add(ms.Get(i).Messages())
		}
	}
	t.files.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		add(f.Messages())
		return true
	})
	sort.Strings(names)
	return names
}

func (t *ProtobufTypes) message(typeName string) (protoreflect.MessageDescriptor, error) {
	d, err := t.files.FindDescriptorByName(protoreflect.FullName(typeName))
	if md, ok := d.(protoreflect.MessageDescriptor); err == nil && ok {
		return md, nil
	}
	if len(typeName) > 128 {
		typeName = typeName[:128]
	}
	return nil, Errorf(CodeInvalidArgument, "protobuf: expected a message type the descriptor set declares, found '%s'", typeName)
}

// Encode is value (proto3 JSON: maps, lists, strings, numbers, booleans) as the binary
// message typeName, deterministic (map entries by key).
func (t *ProtobufTypes) Encode(typeName string, value any) ([]byte, error) {
	md, err := t.message(typeName)
	if err != nil {
		return nil, err
	}
	if err := checkMessage(md, value, "", typeName); err != nil {
		return nil, err
	}
	js, err := json.Marshal(value)
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "protobuf %s: %v", typeName, err)
	}
	msg := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal(js, msg); err != nil {
		return nil, Errorf(CodeInvalidArgument, "protobuf %s: %v", typeName, err)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "protobuf %s: %v", typeName, err)
	}
	return b, nil
}

// Decode is the message typeName in b, as proto3 JSON decoded by encoding/json (numbers float64).
func (t *ProtobufTypes) Decode(typeName string, b []byte) (any, error) {
	md, err := t.message(typeName)
	if err != nil {
		return nil, err
	}
	msg := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(b, msg); err != nil {
		return nil, Errorf(CodeInvalidArgument, "protobuf %s: expected the bytes of a %s, found bytes that are not one (%v)", typeName, typeName, err)
	}
	js, err := protojson.Marshal(msg)
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "protobuf %s: %v", typeName, err)
	}
	var out any
	if err := json.Unmarshal(js, &out); err != nil {
		return nil, Errorf(CodeInvalidArgument, "protobuf %s: %v", typeName, err)
	}
	return out, nil
}
