package logomesh

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Does a proto3 JSON value fit a message type? Checked before protojson parses it, so that a
// mismatch is the same LM_INVALID_ARGUMENT, with the same words, as in every other SDK
// (docs/data-bridge.md): unknown fields, JSON kinds, enum names.

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
	for i := 0; i < md.Oneofs().Len(); i++ {
		o := md.Oneofs().Get(i)
		var set []string
		for j := 0; j < o.Fields().Len(); j++ {
			f := o.Fields().Get(j)
			if obj[f.JSONName()] != nil || obj[string(f.Name())] != nil {
				set = append(set, f.JSONName())
			}
		}
		if len(set) > 1 {
			if path == "" {
				path = "/"
			}
			return Errorf(CodeInvalidArgument, "protobuf %s: %s: expected at most one field of oneof %s, found %s", root, path, o.Name(), strings.Join(set, " and "))
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
