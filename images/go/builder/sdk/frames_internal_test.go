package logomesh

import (
	"errors"
	"testing"
)

// What goes into a binary frame and what stays text: the hub refuses integers past 2^53 in
// binary frames, so the SDK never sends one.
func TestJSONToMsgpackNumbers(t *testing.T) {
	for _, ok := range []string{`{"a":9007199254740991}`, `{"a":-9007199254740991}`, `[1.5,1e-300,0,-0.0,9007199254740991.0]`, `7`, `{"a":[[{"b":[1]}]]}`} {
		b, err := jsonToMsgpack([]byte(ok))
		if err != nil {
			t.Fatalf("%s: %v", ok, err)
		}
		back, err := msgpackToJSON(b)
		if err != nil {
			t.Fatalf("%s back: %v", ok, err)
		}
		if _, err := jsonToMsgpack(back); err != nil {
			t.Fatalf("%s -> %s: %v", ok, back, err)
		}
	}
	for _, text := range []string{`{"a":9007199254740992}`, `{"a":-9007199254740992}`, `9007199254740992.0`, `[18446744073709551616]`, `{"x":[{"y":-9007199254740993}]}`, `1e400`, `123456789012345678901234567890`, `[1e300]`, `1152921504606846976.0`} {
		if _, err := jsonToMsgpack([]byte(text)); !errors.Is(err, errNotBinary) {
			t.Fatalf("%s should stay text, got %v", text, err)
		}
	}
	if b, _ := jsonToMsgpack([]byte(`{"n":1,"s":"x"}`)); len(b) != 8 { // fixmap of 2, fixstr "n", fixint 1, fixstr "s", fixstr "x"
		t.Fatalf("integers should be the smallest msgpack ints: % x", b)
	}
	if _, err := msgpackToJSON([]byte{0xc1}); err == nil {
		t.Fatal("0xc1 is never msgpack")
	}
}
