// Calls from the plugin through the fake hub.

package logomesh_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"logomesh.local/logomesh"
	"logomesh.local/logomesh/logomeshtest"
)

// calling runs fn in a goroutine and returns a channel with its result.
func calling(fn func() (json.RawMessage, error)) pendingCall {
	ch := make(pendingCall, 1)
	go func() {
		raw, err := fn()
		ch <- callResult{raw, err}
	}()
	return ch
}

type callResult struct {
	raw json.RawMessage
	err error
}

type pendingCall chan callResult

func (c pendingCall) get(t *testing.T) callResult {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(logomeshtest.Wait):
		t.Fatal("the call did not return")
		return callResult{}
	}
}

func TestCallSuccess(t *testing.T) {
	s := connect(t, nil)
	ctx := context.Background()
	// Called before the connection is ready: the request follows hello.
	res := calling(func() (json.RawMessage, error) { return s.Plugin.Call(ctx, "other.method", msg{"x": 1}, 2*time.Second) })
	s.Conn.Handshake()
	req := s.Conn.Expect("request")
	if asJSON(t, req["to"]) != `["other"]` || req["method"] != "method" || asJSON(t, req["data"]) != `{"x":1}` || req["timeout"] != float64(2000) {
		t.Fatalf("request = %v", req)
	}
	s.Conn.Answer(req, msg{"y": 2})
	if got := res.get(t); got.err != nil || string(got.raw) != `{"y":2}` {
		t.Fatalf("Call = %s, %v", got.raw, got.err)
	}

	// A name without a dot is a host method; no timeout leaves the hub's default.
	var out struct{ Thoughts []string }
	done := make(chan error, 1)
	go func() { done <- s.Plugin.CallInto(ctx, "get_thoughts", nil, 0, &out) }()
	req = s.Conn.Expect("request")
	if asJSON(t, req["to"]) != `["host"]` || req["method"] != "get_thoughts" || req["data"] != nil || req["timeout"] != nil {
		t.Fatalf("request = %v", req)
	}
	s.Conn.Answer(req, msg{"Thoughts": []string{"a", "b"}})
	if err := <-done; err != nil || !reflect.DeepEqual(out.Thoughts, []string{"a", "b"}) {
		t.Fatalf("CallInto = %v, %v", out, err)
	}
}

func TestCallErrors(t *testing.T) {
	s := start(t, nil)
	ctx := context.Background()

	// The callee's coded error comes back as *Error.
	res := calling(func() (json.RawMessage, error) { return s.Plugin.Call(ctx, "tokenizer.tokenize", msg{}, time.Second) })
	fail(s.Conn, s.Conn.Expect("request"), msg{"code": "LM_INVALID_ARGUMENT", "message": "text is required", "details": msg{"field": "text"}})
	err := res.get(t).err
	var e *logomesh.Error
	if !errors.As(err, &e) || e.Code != "LM_INVALID_ARGUMENT" || e.Message != "text is required" || e.Details["field"] != "text" {
		t.Fatalf("Call = %#v", err)
	}
	if !errors.Is(err, &logomesh.Error{Code: logomesh.CodeInvalidArgument}) || logomesh.CodeOf(err) != "LM_INVALID_ARGUMENT" {
		t.Fatal("errors.Is / CodeOf do not see the code")
	}

	// The hub's own answers: LM_TIMEOUT as a response, LM_PROTOCOL as an error message.
	res = calling(func() (json.RawMessage, error) { return s.Plugin.Call(ctx, "slow.work", nil, time.Second) })
	fail(s.Conn, s.Conn.Expect("request"), msg{"code": "LM_TIMEOUT", "message": "no response within 1000 ms"})
	if err := res.get(t).err; logomesh.CodeOf(err) != logomesh.CodeTimeout {
		t.Fatalf("Call = %v", err)
	}
	res = calling(func() (json.RawMessage, error) { return s.Plugin.Call(ctx, "bad.request", nil, time.Second) })
	req := s.Conn.Expect("request")
	s.Conn.Send(msg{"type": "error", "id": "e1", "correlationId": req["id"], "error": msg{"code": "LM_PROTOCOL", "message": "malformed", "details": "not an object"}})
	err = res.get(t).err
	if !errors.As(err, &e) || e.Code != logomesh.CodeProtocol || e.Details["value"] != "not an object" {
		t.Fatalf("Call = %#v", err)
	}

	// Bad targets fail before anything is sent.
	for _, target := range []string{"", ".method", "plugin.", "a.b.c", "plugin.bad-name"} {
		if _, err := s.Plugin.Call(ctx, target, nil, time.Second); logomesh.CodeOf(err) != logomesh.CodeInvalidArgument {
			t.Errorf("Call(%q) = %v", target, err)
		}
	}
	if _, err := s.Plugin.Call(ctx, "x.y", make(chan int), time.Second); logomesh.CodeOf(err) != logomesh.CodeInvalidArgument {
		t.Errorf("Call with unencodable args = %v", err)
	}
	s.Conn.Quiet(50 * time.Millisecond)
}

func TestCallTimesOutWhenNoAnswerComes(t *testing.T) {
	s := start(t, nil)
	started := time.Now()
	res := calling(func() (json.RawMessage, error) {
		return s.Plugin.Call(context.Background(), "deaf.method", nil, 20*time.Millisecond)
	})
	req := s.Conn.Expect("request")
	err := res.get(t).err
	if logomesh.CodeOf(err) != logomesh.CodeTimeout || time.Since(started) > 3*time.Second {
		t.Fatalf("Call = %v after %v", err, time.Since(started))
	}
	// A late answer is dropped quietly and the connection keeps working.
	s.Conn.Answer(req, "late")
	res = calling(func() (json.RawMessage, error) {
		return s.Plugin.Call(context.Background(), "deaf.method", nil, time.Second)
	})
	s.Conn.Answer(s.Conn.Expect("request"), "on time")
	if got := res.get(t); string(got.raw) != `"on time"` {
		t.Fatalf("Call = %s, %v", got.raw, got.err)
	}
}

func TestCallCancelledByContext(t *testing.T) {
	s := start(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	res := calling(func() (json.RawMessage, error) { return s.Plugin.Call(ctx, "deaf.method", nil, 10*time.Second) })
	s.Conn.Expect("request")
	cancel()
	if err := res.get(t).err; !errors.Is(err, context.Canceled) {
		t.Fatalf("Call = %v", err)
	}
}

func TestCallFromInsideAHandler(t *testing.T) {
	s := start(t, func(p *logomesh.Plugin) {
		p.Handle("relay", func(ctx context.Context, args json.RawMessage) (any, error) {
			return p.Call(ctx, "upper.upper", args, time.Second)
		})
	})
	id := s.Conn.Request("relay", "abc")
	inner := s.Conn.Expect("request")
	s.Conn.Answer(inner, strings.ToUpper(inner["data"].(string)))
	if m := s.Conn.Response(id); m["data"] != "ABC" {
		t.Fatalf("relay = %v", m)
	}
}

func TestLostConnectionWithReconnectOff(t *testing.T) {
	s := start(t, nil, logomesh.WithReconnect(0))
	res := calling(func() (json.RawMessage, error) {
		return s.Plugin.Call(context.Background(), "x.y", nil, 10*time.Second)
	})
	s.Conn.Expect("request")
	s.Conn.Drop()
	if err := res.get(t).err; logomesh.CodeOf(err) != logomesh.CodeControllerUnavailable {
		t.Fatalf("pending Call = %v", err)
	}
	if err := s.Wait(); logomesh.CodeOf(err) != logomesh.CodeControllerUnavailable {
		t.Fatalf("RunContext = %v, want LM_CONTROLLER_UNAVAILABLE", err)
	}
	if _, err := s.Plugin.Call(context.Background(), "x.y", nil, time.Second); logomesh.CodeOf(err) != logomesh.CodeControllerUnavailable {
		t.Fatalf("Call after the end = %v", err)
	}
	if err := s.Plugin.Emit(context.Background(), "a.b", nil); logomesh.CodeOf(err) != logomesh.CodeControllerUnavailable {
		t.Fatalf("Emit after the end = %v", err)
	}
}

func TestCallWithoutRunGivesUp(t *testing.T) {
	p := logomesh.New(logomesh.WithSocket("/nonexistent"), logomesh.WithConnectTimeout(50*time.Millisecond))
	if _, err := p.Call(context.Background(), "x.y", nil, 50*time.Millisecond); logomesh.CodeOf(err) != logomesh.CodeControllerUnavailable {
		t.Fatalf("Call = %v", err)
	}
	if err := p.Emit(context.Background(), "x.y", nil); logomesh.CodeOf(err) != logomesh.CodeControllerUnavailable {
		t.Fatalf("Emit = %v", err)
	}
}
