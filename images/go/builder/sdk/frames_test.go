package logomesh_test

import (
	"encoding/json"
	"strings"
	"testing"

	"logomesh.local/logomesh"
)

// A plugin that asks for msgpack frames offers them in hello, takes binary frames from the
// hub, and answers in binary frames once the hub agreed; a value msgpack cannot carry
// exactly for a JSON peer (an integer past 2^53) goes as a text frame.
func TestMsgpackFramesWhenTheHubAgrees(t *testing.T) {
	s := connect(t, func(p *logomesh.Plugin) { p.Handle("echo", echo) }, logomesh.WithFrames("msgpack"))
	c := s.Conn
	hello := c.Expect("hello")
	if got := asJSON(t, hello["encodings"]); got != `["msgpack","json"]` {
		t.Fatalf("hello's encodings: %s", got)
	}
	c.Send(msg{"type": "response", "id": "hello-ok", "correlationId": hello["id"], "success": true, "data": msg{"protocol": 1, "encoding": "msgpack"}})
	c.Binary = true
	data := msg{"text": "ünïcødé ✓ <&>", "n": 42, "neg": -7, "f": 1.5, "big": 5000000000, "list": []any{nil, true, msg{"deep": []any{[]any{}}}}, "empty": msg{}}
	if got, want := asJSON(t, call(t, c, "echo", data)), asJSON(t, data); got != want {
		t.Fatalf("echo through msgpack frames: %s, want %s", got, want)
	}
	if c.BinaryFrames() != 1 {
		t.Fatalf("the answer should have come in a binary frame; binary frames: %d", c.BinaryFrames())
	}
	// This request goes as text (the hub may send either; the fake hub's msgpack would make raw JSON bin).
	c.Binary = false
	raw, err := c.Call("echo", json.RawMessage(`{"huge":1152921504606846977}`))
	// (The fake hub reads numbers as float64; the frame's kind is what this checks.)
	if err != nil || !strings.HasPrefix(string(raw), `{"huge":11529215046068`) {
		t.Fatalf("an integer past 2^53: %s %v", raw, err)
	}
	if c.BinaryFrames() != 1 {
		t.Fatalf("an integer past 2^53 should go as text; binary frames: %d", c.BinaryFrames())
	}
}

// Without the option the hello offers nothing and everything stays JSON text, even when
// the hub answers "msgpack" (it would not: it answers the encoding both sides offered).
func TestJSONFramesByDefault(t *testing.T) {
	s := connect(t, func(p *logomesh.Plugin) { p.Handle("echo", echo) })
	c := s.Conn
	hello := c.Expect("hello")
	if _, ok := hello["encodings"]; ok {
		t.Fatalf("hello offered encodings without being asked: %v", hello)
	}
	c.Send(msg{"type": "response", "id": "hello-ok", "correlationId": hello["id"], "success": true, "data": msg{"protocol": 1, "encoding": "msgpack"}})
	call(t, c, "echo", msg{"n": 1})
	if c.BinaryFrames() != 0 {
		t.Fatalf("binary frames from a plugin that did not offer them: %d", c.BinaryFrames())
	}
}

// A plugin that offered msgpack but was answered "json" keeps sending text.
func TestMsgpackOfferedButRefused(t *testing.T) {
	s := connect(t, func(p *logomesh.Plugin) { p.Handle("echo", echo) }, logomesh.WithFrames("msgpack"))
	c := s.Conn
	hello := c.Expect("hello")
	c.Send(msg{"type": "response", "id": "hello-ok", "correlationId": hello["id"], "success": true, "data": msg{"protocol": 1, "encoding": "json"}})
	call(t, c, "echo", msg{"n": 1})
	if c.BinaryFrames() != 0 {
		t.Fatalf("binary frames after the hub answered json: %d", c.BinaryFrames())
	}
}
