package logomesh_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/big"
	"os"
	"strings"
	"testing"

	"logomesh.local/logomesh"
)

// The data bridge against the shared vectors (test/vectors/bridge.json of LogoMesh, at
// /opt/logomesh/vectors in the builder image): each value encodes to exactly the listed
// bytes, and what decodes from them encodes to them again.

func vectorsFile() string {
	if f := os.Getenv("LOGOMESH_VECTORS"); f != "" {
		return f
	}
	return "/opt/logomesh/vectors/bridge.json"
}

// fromTagged turns a vector's value into Go values: integers as int64 (uint64 past it),
// other numbers as float64, {"$int"}, {"$float"}, {"$bytes"} as their values.
func fromTagged(t *testing.T, v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := x.Int64(); err == nil {
				return i
			}
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = fromTagged(t, x[i])
		}
		return x
	case map[string]any:
		if len(x) == 1 {
			if s, ok := x["$int"].(string); ok {
				n, _ := new(big.Int).SetString(s, 10)
				if n.IsInt64() {
					return n.Int64()
				}
				return n.Uint64()
			}
			if s, ok := x["$float"].(string); ok {
				switch s {
				case "NaN":
					return math.Float64frombits(0x7ff8000000000000) // the quiet NaN every other SDK writes
				case "Infinity":
					return math.Inf(1)
				default:
					return math.Inf(-1)
				}
			}
			if s, ok := x["$bytes"].(string); ok {
				b, _ := hex.DecodeString(s)
				return b
			}
		}
		for k := range x {
			x[k] = fromTagged(t, x[k])
		}
		return x
	}
	return v
}

func TestBridgeVectors(t *testing.T) {
	raw, err := os.ReadFile(vectorsFile())
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var file struct {
		Vectors []struct {
			Name    string            `json:"name"`
			Value   any               `json:"value"`
			Encoded map[string]string `json:"encoded"`
		} `json:"vectors"`
	}
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) < 10 {
		t.Fatalf("only %d vectors", len(file.Vectors))
	}
	for _, v := range file.Vectors {
		value := fromTagged(t, v.Value)
		for format, want := range v.Encoded {
			got, err := logomesh.EncodeStructured(value, format)
			if err != nil {
				t.Errorf("%s (%s): %v", v.Name, format, err)
				continue
			}
			if hex.EncodeToString(got) != want {
				t.Errorf("%s (%s):\n got %x\nwant %s", v.Name, format, got, want)
			}
			wantBytes, _ := hex.DecodeString(want)
			back, err := logomesh.DecodeStructured(wantBytes, format)
			if err != nil {
				t.Errorf("%s (%s): decode: %v", v.Name, format, err)
				continue
			}
			again, err := logomesh.EncodeStructured(back, format)
			if err != nil || hex.EncodeToString(again) != want {
				t.Errorf("%s (%s): decoded %#v encodes to %x, not the vector (%v)", v.Name, format, back, again, err)
			}
		}
	}
}

func TestBridgeFrameAndRefusals(t *testing.T) {
	b, err := logomesh.FrameStructured(map[string]any{"a": []any{int64(1), "x"}}, "protobuf")
	if err != nil || string(b[:4]) != "LMSD" {
		t.Fatalf("frame: %q %v", b, err)
	}
	v, format, err := logomesh.UnframeStructured(append(b, 0, 0, 0), "")
	if err != nil || format != "protobuf" || v.(map[string]any)["a"].([]any)[1] != "x" {
		t.Fatalf("unframe: %#v %s %v", v, format, err)
	}
	if _, _, err := logomesh.UnframeStructured(b, "json"); err == nil {
		t.Fatal("a protobuf frame read as json")
	}
	for _, c := range []struct {
		v      any
		format string
	}{{math.NaN(), "json"}, {[]byte("x"), "json"}, {[]byte("x"), "protobuf"}} {
		if _, err := logomesh.EncodeStructured(c.v, c.format); err == nil {
			t.Errorf("%T in %s was not refused", c.v, c.format)
		}
	}
}
