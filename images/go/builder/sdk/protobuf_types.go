package logomesh

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

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

var decimalInteger = regexp.MustCompile(`^-?[0-9]+$`)

// shownValue is the found part of the message, worded alike in every SDK.
func shownValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if r := []rune(x); len(r) > 64 {
			x = string(r[:64]) + "..."
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(x)
		return strings.TrimSuffix(buf.String(), "\n") + " (string)"
	case bool:
		return strconv.FormatBool(x) + " (boolean)"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64) + " (number)"
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32) + " (number)"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return numberString(x) + " (number)"
	case json.Number:
		return string(x) + " (number)"
	case []any:
		return "a list"
	case []byte:
		return "binary data"
	}
	return "an object"
}

func numberString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func typeMismatch(root, path, expected string, found any) error {
	if path == "" {
		path = "/"
	}
	return Errorf(CodeInvalidArgument, "protobuf %s: %s: expected %s, found %s", root, path, expected, shownValue(found))
}

func checkMessage(md protoreflect.MessageDescriptor, v any, path, root string) error {
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return nil // their own JSON forms (Timestamp, Struct, ...): left to protojson
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return typeMismatch(root, path, "an object (message "+string(md.FullName())+")", v)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a stable first error: Go's maps have no order
	for _, key := range keys {
		at := path + "/" + key
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(key))
		}
		if fd == nil {
			return typeMismatch(root, at, "a field of "+string(md.FullName()), key)
		}
		x := obj[key]
		if x == nil {
			continue // proto3 JSON: null is the field's default
		}
		var err error
		switch {
		case fd.IsMap():
			m, ok := x.(map[string]any)
			if !ok {
				return typeMismatch(root, at, "an object (map of "+describeField(fd.MapValue())+")", x)
			}
			mk := make([]string, 0, len(m))
			for k := range m {
				mk = append(mk, k)
			}
			sort.Strings(mk)
			for _, k := range mk {
				if err = checkSingle(fd.MapValue(), m[k], at+"/"+k, root); err != nil {
					return err
				}
			}
		case fd.IsList():
			l, ok := x.([]any)
			if !ok {
				return typeMismatch(root, at, "a list (repeated "+describeField(fd)+")", x)
			}
			for i, e := range l {
				if err = checkSingle(fd, e, at+"/"+strconv.Itoa(i), root); err != nil {
					return err
				}
			}
		default:
			err = checkSingle(fd, x, at, root)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func describeField(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return string(fd.Message().FullName())
	case protoreflect.EnumKind:
		return string(fd.Enum().FullName())
	}
	return fd.Kind().String()
}

func isInteger(v any) bool {
	switch x := v.(type) {
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return true
	case float64:
		return x == float64(int64(x)) || (x >= 9.2e18 && x < 1.85e19 && x == float64(uint64(x)))
	case json.Number:
		return decimalInteger.MatchString(string(x))
	case string:
		return decimalInteger.MatchString(x)
	}
	return false
}

func checkSingle(fd protoreflect.FieldDescriptor, v any, path, root string) error {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkMessage(fd.Message(), v, path, root)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		names := make([]string, vals.Len())
		for i := range names {
			names[i] = string(vals.Get(i).Name())
		}
		if s, ok := v.(string); ok && vals.ByName(protoreflect.Name(s)) != nil {
			return nil
		}
		if _, ok := v.(string); !ok && isInteger(v) {
			return nil
		}
		return typeMismatch(root, path, "enum "+string(fd.Enum().FullName())+" (one of "+strings.Join(names, ", ")+", or a number)", v)
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return typeMismatch(root, path, "bool (true or false)", v)
		}
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			return typeMismatch(root, path, "string", v)
		}
	case protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			return typeMismatch(root, path, "bytes (a base64 string)", v)
		}
	case protoreflect.DoubleKind, protoreflect.FloatKind:
		switch v.(type) {
		case string, float64, float32, json.Number, int, int64, int32, uint64, uint32:
		default:
			return typeMismatch(root, path, fd.Kind().String()+" (a number)", v)
		}
	default:
		if !isInteger(v) {
			return typeMismatch(root, path, fd.Kind().String()+" (an integer or a decimal string)", v)
		}
	}
	return nil
}
