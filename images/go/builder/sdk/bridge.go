package logomesh

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"sort"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// The data bridge (docs/data-bridge.md): structured data in one of three formats every SDK
// writes byte for byte alike: "json" (compact, keys sorted, no HTML escaping), "msgpack"
// (smallest integers, float64, bin for []byte, keys sorted; vmihailenco/msgpack) and
// "protobuf" (a google.protobuf.Value; structpb, deterministic; or a declared message type,
// protobuf_types.go). A structured segment starts
// with a 16-byte header: "LMSD", version 1, the format (1, 2, 3), two zero bytes, the
// payload's length (uint64, little-endian).

var formats = map[string]byte{"json": 1, "msgpack": 2, "protobuf": 3}

const headerBytes = 16

// EncodeStructured is value's payload in format (no header).
func EncodeStructured(value any, format string) ([]byte, error) {
	switch format {
	case "json":
		if err := checkJSON(value); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(value); err != nil {
			return nil, Errorf(CodeInvalidArgument, "json cannot carry this value: %v", err)
		}
		return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
	case "msgpack":
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.SetSortMapKeys(true)
		enc.UseCompactInts(true)
		enc.UseCompactFloats(false)
		if err := enc.Encode(value); err != nil {
			return nil, Errorf(CodeInvalidArgument, "msgpack cannot carry this value: %v", err)
		}
		return buf.Bytes(), nil
	case "protobuf":
		v, err := toValue(value)
		if err != nil {
			return nil, err
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(v)
		if err != nil {
			return nil, Errorf(CodeInvalidArgument, "protobuf: %v", err)
		}
		return b, nil
	}
	return nil, Errorf(CodeInvalidArgument, "format %q is not one of json, msgpack, protobuf", format)
}

// DecodeStructured decodes a payload: maps as map[string]any, arrays as []any; json numbers
// as float64, msgpack integers as int64 or uint64, protobuf numbers as float64.
func DecodeStructured(payload []byte, format string) (any, error) {
	var out any
	switch format {
	case "json":
		if err := json.Unmarshal(payload, &out); err != nil {
			return nil, Errorf(CodeInvalidArgument, "not json: %v", err)
		}
	case "msgpack":
		dec := msgpack.NewDecoder(bytes.NewReader(payload))
		v, err := dec.DecodeInterfaceLoose()
		if err != nil {
			return nil, Errorf(CodeInvalidArgument, "not msgpack: %v", err)
		}
		out = v
	case "protobuf":
		v := &structpb.Value{}
		if err := proto.Unmarshal(payload, v); err != nil {
			return nil, Errorf(CodeInvalidArgument, "not a google.protobuf.Value: %v", err)
		}
		out = fromValue(v)
	default:
		return nil, Errorf(CodeInvalidArgument, "format %q is not one of json, msgpack, protobuf", format)
	}
	return out, nil
}

// FrameStructured is the header and payload, as written into a segment.
func FrameStructured(value any, format string) ([]byte, error) {
	payload, err := EncodeStructured(value, format)
	if err != nil {
		return nil, err
	}
	return framePayload(payload, formats[format]), nil
}

// FrameMessage is value as the declared message typeName of types (format protobuf), with
// the header, as written into a segment.
func FrameMessage(types *ProtobufTypes, typeName string, value any) ([]byte, error) {
	payload, err := types.Encode(typeName, value)
	if err != nil {
		return nil, err
	}
	return framePayload(payload, formats["protobuf"]), nil
}

// UnframeMessage reads a segment's bytes written by FrameMessage (or any SDK's protobuf
// with that type): the header must say protobuf.
func UnframeMessage(b []byte, types *ProtobufTypes, typeName string) (any, error) {
	if _, _, err := unframeHeader(b, "protobuf"); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint64(b[8:])
	return types.Decode(typeName, b[headerBytes:headerBytes+int(n)])
}

func framePayload(payload []byte, code byte) []byte {
	out := make([]byte, headerBytes, headerBytes+len(payload))
	copy(out, "LMSD")
	out[4], out[5] = 1, code
	binary.LittleEndian.PutUint64(out[8:], uint64(len(payload)))
	return append(out, payload...)
}

// UnframeStructured reads a structured segment's bytes; format, when not empty, must match.
func UnframeStructured(b []byte, format string) (any, string, error) {
	name, n, err := unframeHeader(b, format)
	if err != nil {
		return nil, "", err
	}
	v, err := DecodeStructured(b[headerBytes:headerBytes+int(n)], name)
	return v, name, err
}

// unframeHeader checks the header: the format's name and the payload's length.
func unframeHeader(b []byte, format string) (string, uint64, error) {
	if len(b) < headerBytes || string(b[:4]) != "LMSD" || b[4] != 1 {
		return "", 0, Errorf(CodeSegment, "the segment holds no structured data (no LMSD header)")
	}
	name := ""
	for n, c := range formats {
		if c == b[5] {
			name = n
		}
	}
	if name == "" || (format != "" && format != name) {
		return "", 0, Errorf(CodeSegment, "the segment holds format %d, not %s", b[5], format)
	}
	n := binary.LittleEndian.Uint64(b[8:])
	if n > uint64(len(b)-headerBytes) {
		return "", 0, Errorf(CodeSegment, "the header says %d bytes of data; the segment has %d", n, len(b)-headerBytes)
	}
	return name, n, nil
}

func checkJSON(v any) error {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return Errorf(CodeInvalidArgument, "json cannot carry NaN or infinities; use msgpack or protobuf")
		}
	case []byte:
		return Errorf(CodeInvalidArgument, "json cannot carry binary data; use msgpack")
	case map[string]any:
		for _, e := range x {
			if err := checkJSON(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkJSON(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// toValue builds a google.protobuf.Value with its Struct keys added in sorted order.
func toValue(v any) (*structpb.Value, error) {
	switch x := v.(type) {
	case nil:
		return structpb.NewNullValue(), nil
	case bool:
		return structpb.NewBoolValue(x), nil
	case string:
		return structpb.NewStringValue(x), nil
	case float64:
		return structpb.NewNumberValue(x), nil
	case float32:
		return structpb.NewNumberValue(float64(x)), nil
	case int:
		return structpb.NewNumberValue(float64(x)), nil
	case int64:
		return structpb.NewNumberValue(float64(x)), nil
	case uint64:
		return structpb.NewNumberValue(float64(x)), nil
	case []any:
		l := &structpb.ListValue{Values: make([]*structpb.Value, 0, len(x))}
		for _, e := range x {
			ev, err := toValue(e)
			if err != nil {
				return nil, err
			}
			l.Values = append(l.Values, ev)
		}
		return structpb.NewListValue(l), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(x))}
		for _, k := range keys {
			ev, err := toValue(x[k])
			if err != nil {
				return nil, err
			}
			s.Fields[k] = ev
		}
		return structpb.NewStructValue(s), nil
	}
	return nil, Errorf(CodeInvalidArgument, "protobuf (google.protobuf.Value) cannot carry %T; use msgpack", v)
}

// fromValue is structpb's AsInterface without its turning NaN and infinities into strings.
func fromValue(v *structpb.Value) any {
	switch k := v.GetKind().(type) {
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_NumberValue:
		return k.NumberValue
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_ListValue:
		out := make([]any, 0, len(k.ListValue.GetValues()))
		for _, e := range k.ListValue.GetValues() {
			out = append(out, fromValue(e))
		}
		return out
	case *structpb.Value_StructValue:
		out := make(map[string]any, len(k.StructValue.GetFields()))
		for key, e := range k.StructValue.GetFields() {
			out[key] = fromValue(e)
		}
		return out
	}
	return nil
}
