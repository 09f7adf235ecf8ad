package main

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"logomesh.local/logomesh"
	"logomesh.local/logomesh/logomeshtest"
)

func TestTokens(t *testing.T) {
	cases := map[string][]string{
		"Hello, World!":             {"hello", "world"},
		"Don't stop -- it's 2024":   {"don't", "stop", "it's", "2024"},
		"rock ’n’ roll":             {"rock", "’n’", "roll"},
		"ÄPFEL und Ünïcödé":         {"äpfel", "und", "ünïcödé"},
		"Cafe\u0301 au lait":        {"cafe\u0301", "au", "lait"},
		"Привет, МИР":               {"привет", "мир"},
		"snake_case and kebab-case": {"snake", "case", "and", "kebab", "case"},
		"x2 = 6x7\t\n42":            {"x2", "6x7", "42"},
		"日本語のテキスト":                  {"日本語のテキスト"},
		"":                          {},
		"  ... !!! ":                {},
	}
	for text, want := range cases {
		if got := Tokens(text); !reflect.DeepEqual(got, want) {
			t.Errorf("Tokens(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestTokenizeMethod(t *testing.T) {
	got, err := tokenize(context.Background(), json.RawMessage(`{"text":"Hello world"}`))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(got); string(b) != `{"tokens":["hello","world"]}` {
		t.Fatalf("tokenize = %s", b)
	}
	got, _ = tokenize(context.Background(), json.RawMessage(`{"text":""}`))
	if b, _ := json.Marshal(got); string(b) != `{"tokens":[]}` {
		t.Fatalf("tokenize of empty text = %s", b)
	}
	for _, args := range []string{`{}`, `{"text":42}`, `{"text":null}`, `{"text":["a"]}`, `"just a string"`, `null`} {
		_, err := tokenize(context.Background(), json.RawMessage(args))
		if logomesh.CodeOf(err) != logomesh.CodeInvalidArgument {
			t.Errorf("tokenize(%s) = %v, want LM_INVALID_ARGUMENT", args, err)
		}
	}
}

// The plugin as the hub sees it: hello, then requests over the WebSocket.
func TestThroughAFakeHub(t *testing.T) {
	s := logomeshtest.Start(t, register)
	data, err := s.Conn.Call("tokenize", map[string]any{"text": "Hello, World"})
	if err != nil || string(data) != `{"tokens":["hello","world"]}` {
		t.Fatalf("tokenize = %s, %v", data, err)
	}
	_, err = s.Conn.Call("tokenize", map[string]any{"text": 1})
	var e *logomesh.Error
	if !errors.As(err, &e) || e.Code != logomesh.CodeInvalidArgument || e.Details["found"] != "number" {
		t.Fatalf("tokenize of a number = %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
}
