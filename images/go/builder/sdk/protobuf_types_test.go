package logomesh_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"logomesh.local/logomesh"
)

// Declared message types against test/vectors/protobuf-types.json: each value encodes to
// exactly the listed bytes and decodes to the canonical proto3 JSON; each value that does not
// fit is LM_INVALID_ARGUMENT with exactly the message every SDK gives.

type typedVectors struct {
	DescriptorSet string `json:"descriptorSet"`
	Vectors       []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		Value    any    `json:"value"`
		Decoded  any    `json:"decoded"`
		Protobuf string `json:"protobuf"`
	} `json:"vectors"`
	Invalid []struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Value any    `json:"value"`
		Error string `json:"error"`
	} `json:"invalid"`
}

func loadTyped(t *testing.T) (*typedVectors, *logomesh.ProtobufTypes) {
	t.Helper()
	dir := filepath.Dir(vectorsFile())
	raw, err := os.ReadFile(filepath.Join(dir, "protobuf-types.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc typedVectors
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	types, err := logomesh.LoadProtobufTypes(filepath.Join(dir, doc.DescriptorSet))
	if err != nil {
		t.Fatal(err)
	}
	return &doc, types
}

func TestDeclaredMessageVectors(t *testing.T) {
	doc, types := loadTyped(t)
	if len(doc.Vectors) < 5 {
		t.Fatalf("only %d vectors", len(doc.Vectors))
	}
	for _, v := range doc.Vectors {
		b, err := types.Encode(v.Type, v.Value)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if got := hex.EncodeToString(b); got != v.Protobuf {
			t.Errorf("%s: encoded\n %s, want\n %s", v.Name, got, v.Protobuf)
		}
		raw, _ := hex.DecodeString(v.Protobuf)
		back, err := types.Decode(v.Type, raw)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if !reflect.DeepEqual(back, v.Decoded) {
			t.Errorf("%s: decoded %#v, want %#v", v.Name, back, v.Decoded)
		}
	}
}

func TestDeclaredMessageRefusals(t *testing.T) {
	doc, types := loadTyped(t)
	if len(doc.Invalid) < 5 {
		t.Fatalf("only %d invalid vectors", len(doc.Invalid))
	}
	for _, v := range doc.Invalid {
		_, err := types.Encode(v.Type, v.Value)
		var le *logomesh.Error
		if !errors.As(err, &le) || le.Code != logomesh.CodeInvalidArgument || le.Message != v.Error {
			t.Errorf("%s: got %v, want LM_INVALID_ARGUMENT: %s", v.Name, err, v.Error)
		}
	}
	typeName := doc.Vectors[0].Type
	for name, call := range map[string]func() error{
		"unknown type": func() error { _, err := types.Encode("no.such.Type", map[string]any{}); return err },
		"bad bytes":    func() error { _, err := types.Decode(typeName, []byte{0xff, 0xff}); return err },
		"bad set":      func() error { _, err := logomesh.NewProtobufTypes([]byte("\x0a\x05junk!")); return err },
		"wrong header": func() error {
			b, _ := logomesh.FrameStructured(1.0, "json")
			_, err := logomesh.UnframeMessage(b, types, typeName)
			return err
		},
	} {
		var le *logomesh.Error
		if err := call(); !errors.As(err, &le) || (le.Code != logomesh.CodeInvalidArgument && le.Code != logomesh.CodeSegment) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	b, err := logomesh.FrameMessage(types, typeName, map[string]any{"big": "9007199254740993"})
	if err != nil {
		t.Fatal(err)
	}
	back, err := logomesh.UnframeMessage(append(b, 0, 0, 0), types, typeName)
	if err != nil || !reflect.DeepEqual(back, map[string]any{"big": "9007199254740993"}) {
		t.Fatalf("round trip through the header: %v %v", back, err)
	}
}
