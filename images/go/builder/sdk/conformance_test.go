// The SDK against the protocol's one source: its constants (protocol.json) and the recorded
// conformance session (transcript.json), at /opt/logomesh/protocol in the builder image;
// and handlers that fail in every way a handler can, which never end the plugin.

package logomesh_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"logomesh.local/logomesh"
	"logomesh.local/logomesh/logomeshtest"
)

// conformance sets up the plugin transcript.json expects (images/protocol/README.md).
func conformance(p *logomesh.Plugin) {
	p.Handle("echo", echo)
	p.Handle("fail", func(context.Context, json.RawMessage) (any, error) {
		return nil, logomesh.NewError(logomesh.CodeInvalidArgument, "fail was called", map[string]any{"field": "x"})
	})
	seen := func(ctx context.Context, ev logomesh.Event) {
		_ = p.Emit(ctx, "conf.seen", map[string]any{"kind": ev.Kind, "topic": ev.Topic, "from": ev.From, "data": ev.Data})
	}
	p.Handle("listen", logomesh.Typed(func(_ context.Context, in struct{ Topic string }) (any, error) {
		p.On(in.Topic, seen)
		return map[string]string{"listening": in.Topic}, nil
	}))
	p.Handle("make", logomesh.Typed(func(_ context.Context, in struct{ Depth, Bytes int }) (any, error) {
		if in.Bytes > 0 {
			return strings.Repeat("x", in.Bytes), nil
		}
		return nested(in.Depth), nil
	}))
	p.Handle("relay", logomesh.Typed(func(ctx context.Context, in struct {
		Target string
		Args   json.RawMessage
	}) (any, error) {
		return p.Call(ctx, in.Target, in.Args, 5*time.Second)
	}))
	p.Handle("throw", func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("boom") })
	p.On("conf.*", seen)
}

// nested is n nested arrays, an empty one innermost.
func nested(n int) any {
	v := []any{}
	for i := 1; i < n; i++ {
		v = []any{v}
	}
	return v
}

func TestConstantsAreProtocolJSON(t *testing.T) {
	c := logomeshtest.LoadProtocol(t)
	sizes, timeouts, types := c["messageBytes"].(map[string]any), c["callTimeoutMs"].(map[string]any), c["messageTypes"].(map[string]any)
	codes := map[string]string{}
	for code, by := range c["errorCodes"].(map[string]any) {
		codes[code] = by.(string)
	}
	strs := func(v any) (out []string) {
		for _, s := range v.([]any) {
			out = append(out, s.(string))
		}
		return out
	}
	checks := []struct {
		name      string
		sdk, file any
	}{
		{"protocol", float64(logomesh.ProtocolVersion), c["protocol"]},
		{"maxDepth", float64(logomesh.MaxDepth), c["maxDepth"]},
		{"messageBytes.default", float64(logomesh.DefaultMaxMessageBytes), sizes["default"]},
		{"messageBytes.max", float64(logomesh.MaxMessageBytes), sizes["max"]},
		{"messageBytes.hardLimitFactor", float64(logomesh.HardLimitFactor), sizes["hardLimitFactor"]},
		{"callTimeoutMs.default", float64(logomesh.DefaultCallTimeout.Milliseconds()), timeouts["default"]},
		{"callTimeoutMs.max", float64(logomesh.MaxCallTimeout.Milliseconds()), timeouts["max"]},
		{"idMaxLength", float64(logomesh.IDMaxLength), c["idMaxLength"]},
		{"messageTypes.toHub", logomesh.MessagesToHub, strs(types["toHub"])},
		{"messageTypes.fromHub", logomesh.MessagesFromHub, strs(types["fromHub"])},
		{"errorCodes", logomesh.WireCodes, codes},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.sdk, ch.file) {
			t.Errorf("%s: the SDK has %v, protocol.json %v", ch.name, ch.sdk, ch.file)
		}
	}
}

func TestFollowsTheConformanceTranscript(t *testing.T) {
	hub := logomeshtest.NewHub(t)
	s := logomeshtest.Launch(t, hub, conformance, logomesh.WithPluginID("conformance"))
	bound := hub.Accept().Replay(logomeshtest.LoadTranscript(t))
	if sdk, _ := bound["sdk"].(string); !strings.HasPrefix(sdk, "go/") {
		t.Errorf("hello's sdk = %v", bound["sdk"])
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("Run = %v after the transcript's shutdown", err)
	}
}

func TestTheReplayNoticesAPluginThatStrays(t *testing.T) {
	hub := logomeshtest.NewHub(t)
	logomeshtest.Launch(t, hub, func(p *logomesh.Plugin) {
		conformance(p)
		p.Handle("extra", echo)
	})
	_, err := hub.Accept().ReplayErr(logomeshtest.LoadTranscript(t))
	if err == nil || !strings.Contains(err.Error(), "step 1 ") || !strings.Contains(err.Error(), "methods") {
		t.Fatalf("ReplayErr = %v, want a mismatch of hello's methods at step 1", err)
	}
}

type panicky struct{}

func (panicky) MarshalJSON() ([]byte, error) { panic("no JSON for you") }

type brokenError struct{}

func (*brokenError) Error() string { panic("no text either") }

func TestHandlersThatFailInEveryWayAnswerWithACode(t *testing.T) {
	cycle := map[string]any{}
	cycle["self"] = cycle
	s := connect(t, func(p *logomesh.Plugin) {
		p.Handle("cyclic", func(context.Context, json.RawMessage) (any, error) { return cycle, nil })
		p.Handle("deep", func(context.Context, json.RawMessage) (any, error) { return nested(5000), nil })
		p.Handle("marshalPanics", func(context.Context, json.RawMessage) (any, error) { return panicky{}, nil })
		p.Handle("errorPanics", func(context.Context, json.RawMessage) (any, error) { return nil, &brokenError{} })
		p.Handle("nilError", func(context.Context, json.RawMessage) (any, error) {
			var e *logomesh.Error
			return nil, e
		})
		p.Handle("panicsNil", func(context.Context, json.RawMessage) (any, error) { panic(nil) })
		p.Handle("goexit", func(context.Context, json.RawMessage) (any, error) {
			runtime.Goexit()
			return nil, nil
		})
		p.Handle("ok", echo)
		p.On("t", func(context.Context, logomesh.Event) { panic("handler") })
	})
	s.Conn.Handshake()
	for _, method := range []string{"cyclic", "deep", "marshalPanics", "errorPanics", "nilError", "panicsNil", "goexit"} {
		if m := callError(t, s.Conn, method, nil); m["code"] != logomesh.CodePluginError {
			t.Errorf("%s: error = %v, want LM_PLUGIN_ERROR", method, m)
		}
	}
	s.Conn.Event("x", "t", nil)
	if got := call(t, s.Conn, "ok", "still here"); got != "still here" {
		t.Fatalf("ok = %v", got)
	}
}

func TestOutboundDataThatCannotBeSentIsRefusedBeforeSending(t *testing.T) {
	s := start(t, nil)
	ctx := context.Background()
	if _, err := s.Plugin.Call(ctx, "other.m", nested(64), time.Second); logomesh.CodeOf(err) != logomesh.CodeInvalidArgument {
		t.Errorf("Call with 65 levels = %v", err)
	}
	if err := s.Plugin.Emit(ctx, "topic", nested(64)); logomesh.CodeOf(err) != logomesh.CodeInvalidArgument {
		t.Errorf("Emit with 65 levels = %v", err)
	}
	if err := s.Plugin.Broadcast(ctx, "topic", strings.Repeat("x", 17<<20)); logomesh.CodeOf(err) != logomesh.CodeMessageTooLarge {
		t.Errorf("Broadcast of 17 MiB = %v", err)
	}
	s.Conn.Quiet(200 * time.Millisecond)
}
