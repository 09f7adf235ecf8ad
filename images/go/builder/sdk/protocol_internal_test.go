package logomesh

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestDepthCountsTheFrameAsLevelOneAndSkipsStrings(t *testing.T) {
	cases := map[string]int{
		`{"a":[[]]}`: 3,
		`{"s":"` + strings.Repeat("[", 200) + `","d":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`: 71,
		`{"s":"\"[[[["}`: 1,
	}
	for text, want := range cases {
		if got := depth([]byte(text)); got != want && !(want <= MaxDepth && got <= MaxDepth) {
			t.Errorf("depth(%.40s...) = %d, want %d", text, got, want)
		}
	}
}

func TestADeepOrLargeFrameIsRefusedWithItsTopLevelFields(t *testing.T) {
	deep := []byte(`{"type":"request","data":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `,"id":"r\"1","to":["x"]}`)
	m, r := decode(deep, 1<<20)
	if m != nil || r == nil || r.code != CodeProtocol || !strings.Contains(r.message, "5001 levels") {
		t.Fatalf("decode(deep) = %v, %+v", m, r)
	}
	if want := map[string]string{"type": "request", "id": `r"1`}; !reflect.DeepEqual(r.fields, want) {
		t.Errorf("fields = %v, want %v", r.fields, want)
	}
	_, r = decode([]byte(`{"type":"response","correlationId":"7","data":"`+strings.Repeat("x", 100)+`"}`), 64)
	if r == nil || r.code != CodeMessageTooLarge || !reflect.DeepEqual(r.fields, map[string]string{"type": "response", "correlationId": "7"}) {
		t.Errorf("decode(large) refusal = %+v", r)
	}
	if got := topFields([]byte(`{"id":5,"type":{"id":"no"},"correlationId":"c"}`)); !reflect.DeepEqual(got, map[string]string{"correlationId": "c"}) {
		t.Errorf("topFields = %v", got)
	}
	// Unterminated strings and brackets only: scanned to the end, nothing found, no panic.
	for _, garbage := range [][]byte{[]byte(`{"id":"a` + strings.Repeat(`\"`, 1000)), bytes.Repeat([]byte("["), 1<<20), []byte(`"\`)} {
		if _, r := decode(garbage, 4<<20); r == nil {
			t.Errorf("decode(%.20q) accepted", garbage)
		}
	}
}

func TestWhatCannotBeEncoded(t *testing.T) {
	cycle := map[string]any{}
	cycle["self"] = cycle
	deep := any([]any{})
	for i := 0; i < 5000; i++ {
		deep = []any{deep}
	}
	n64 := any([]any{})
	for i := 1; i < 64; i++ {
		n64 = []any{n64}
	}
	for value, words := range map[string]struct {
		v     any
		words string
	}{
		"cycle": {cycle, "cannot be encoded"}, "channel": {make(chan int), "cannot be encoded"}, "deep": {deep, "5002 levels"}, "65 levels": {n64, "65 levels"},
	} {
		_, err := encode(map[string]any{"data": words.v}, 1<<20)
		if ee, ok := err.(*encodeError); !ok || ee.tooLarge || !strings.Contains(ee.reason, words.words) {
			t.Errorf("%s: encode = %v", value, err)
		}
	}
	if b, err := encode(map[string]any{"data": "x"}, 1<<20); err != nil || string(b) != `{"data":"x"}` {
		t.Errorf("encode = %s, %v", b, err)
	}
	if _, err := encode(map[string]any{"data": strings.Repeat("x", 100)}, 64); fmt.Sprint(err) == "" || !err.(*encodeError).tooLarge {
		t.Errorf("encode(100 bytes, max 64) = %v", err)
	}
}
