package logomesh_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"logomesh.local/logomesh"
	"logomesh.local/logomesh/logomeshtest"
)

type msg = logomeshtest.Message

func echo(ctx context.Context, args json.RawMessage) (any, error) { return args, nil }

// start runs a plugin (id "tester") against a fake hub, handshake done.
func start(t *testing.T, setup func(p *logomesh.Plugin), opts ...logomesh.Option) *logomeshtest.Session {
	t.Helper()
	return logomeshtest.Start(t, setup, append([]logomesh.Option{logomesh.WithPluginID("tester")}, opts...)...)
}

// connect runs a plugin against a fake hub and accepts its connection, without the handshake.
func connect(t *testing.T, setup func(p *logomesh.Plugin), opts ...logomesh.Option) *logomeshtest.Session {
	t.Helper()
	s := logomeshtest.Launch(t, logomeshtest.NewHub(t), setup, append([]logomesh.Option{logomesh.WithPluginID("tester")}, opts...)...)
	s.Conn = s.Hub.Accept()
	return s
}

// call sends a request and returns the response's data, failing unless it succeeded.
func call(t *testing.T, c *logomeshtest.Conn, method string, data any) any {
	t.Helper()
	m := c.Response(c.Request(method, data))
	if m["success"] != true {
		t.Fatalf("%s failed: %v", method, m)
	}
	return m["data"]
}

// callError sends a request and returns the error of its failed response.
func callError(t *testing.T, c *logomeshtest.Conn, method string, data any) msg {
	t.Helper()
	m := c.Response(c.Request(method, data))
	e, ok := m["error"].(msg)
	if m["success"] != false || !ok {
		t.Fatalf("%s: expected a failed response with an error, got %v", method, m)
	}
	return e
}

// fail answers a request of the plugin with an error given as JSON.
func fail(c *logomeshtest.Conn, req msg, e msg) {
	c.Send(msg{"type": "response", "id": "f", "correlationId": req["id"], "success": false, "error": e})
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHelloAnnouncesMethodsOverUnixSocket(t *testing.T) {
	s := connect(t, func(p *logomesh.Plugin) {
		p.Handle("b_method", echo)
		p.Handle("a_method", echo)
	})
	if s.Conn.Path != "/v1" || s.Conn.Host != "logomesh" {
		t.Fatalf("upgrade request GET %s Host %s, want GET /v1 Host logomesh", s.Conn.Path, s.Conn.Host)
	}
	hello := s.Conn.Handshake()
	if hello["protocol"] != float64(1) || hello["sdk"] != "go/"+logomesh.Version || hello["id"] == "" {
		t.Fatalf("hello = %v", hello)
	}
	if got := asJSON(t, hello["methods"]); got != `["a_method","b_method"]` {
		t.Fatalf("methods = %s", got)
	}
	go s.Stop()
	if code := s.Conn.WaitClosed(); code != websocket.CloseNormalClosure {
		t.Fatalf("close status %d, want 1000", code)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("RunContext = %v, want nil", err)
	}
}

func TestHelloWithoutMethodsSendsAnEmptyList(t *testing.T) {
	s := connect(t, nil)
	if got := asJSON(t, s.Conn.Handshake()["methods"]); got != `[]` {
		t.Fatalf("methods = %s", got)
	}
}

func TestHelloRefusedEndsRunWithTheHubsError(t *testing.T) {
	s := connect(t, func(p *logomesh.Plugin) { p.Handle("secret", echo) })
	hello := s.Conn.Expect("hello")
	fail(s.Conn, hello, msg{"code": "LM_PERMISSION_DENIED", "message": "secret is not exposed", "details": msg{"method": "secret"}})
	err := s.Wait()
	var e *logomesh.Error
	if !errors.As(err, &e) || e.Code != logomesh.CodePermissionDenied || e.Message != "secret is not exposed" || e.Details["method"] != "secret" {
		t.Fatalf("RunContext = %#v", err)
	}
	s.Conn.WaitClosed()
}

func TestRunWithoutSocketFails(t *testing.T) {
	p := logomesh.New(logomesh.WithSocket(""))
	err := p.RunContext(context.Background())
	if logomesh.CodeOf(err) != logomesh.CodeControllerUnavailable || !strings.Contains(err.Error(), "LOGOMESH_HUB_SOCKET") {
		t.Fatalf("RunContext = %v", err)
	}
}

func TestRunRetriesUntilTheSocketExists(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "hub.sock")
	if len(socket) > 100 {
		socket = filepath.Join(os.TempDir(), fmt.Sprintf("lm-retry-%d.sock", os.Getpid()))
	}
	logomeshtest.LaunchAt(t, socket, nil)
	time.Sleep(150 * time.Millisecond)
	logomeshtest.NewHubAt(t, socket).Accept().Handshake()
}

func TestRunGivesUpWhenNothingListens(t *testing.T) {
	s := logomeshtest.LaunchAt(t, filepath.Join(t.TempDir(), "nothing.sock"), nil, logomesh.WithConnectTimeout(200*time.Millisecond))
	if err := s.Wait(); logomesh.CodeOf(err) != logomesh.CodeControllerUnavailable {
		t.Fatalf("RunContext = %v", err)
	}
}

func TestSyncMethod(t *testing.T) {
	s := start(t, func(p *logomesh.Plugin) {
		p.Handle("add", logomesh.Typed(func(ctx context.Context, in struct{ A, B int }) (int, error) { return in.A + in.B, nil }))
		p.Handle("nothing", func(ctx context.Context, args json.RawMessage) (any, error) { return nil, nil })
		p.Handle("args", func(ctx context.Context, args json.RawMessage) (any, error) { return string(args), nil })
	})
	id := s.Conn.Request("add", msg{"A": 2, "B": 40})
	m := s.Conn.Response(id)
	if m["success"] != true || m["data"] != float64(42) || m["id"] == "" || m["id"] == nil {
		t.Fatalf("response = %v", m)
	}
	if data, ok := s.Conn.Response(s.Conn.Request("nothing", nil))["data"]; !ok || data != nil {
		t.Fatalf("a nil result must be sent as data: null, got %v (present %v)", data, ok)
	}
	// A request without data reaches the handler as null.
	s.Conn.Send(msg{"type": "request", "id": "nodata", "from": "caller", "method": "args"})
	if got := s.Conn.Response("nodata")["data"]; got != "null" {
		t.Fatalf("args of a request without data = %v", got)
	}
}

func TestSlowMethodDoesNotBlockOthers(t *testing.T) {
	release := make(chan struct{})
	s := start(t, func(p *logomesh.Plugin) {
		p.Handle("slow", func(ctx context.Context, args json.RawMessage) (any, error) {
			select {
			case <-release:
				return "slow done", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
		p.Handle("echo", echo)
	})
	slow := s.Conn.Request("slow", nil)
	if got := call(t, s.Conn, "echo", "quick"); got != "quick" {
		t.Fatalf("echo = %v", got)
	}
	close(release)
	if m := s.Conn.Response(slow); m["data"] != "slow done" {
		t.Fatalf("slow = %v", m)
	}
}

func TestRequestsRunConcurrently(t *testing.T) {
	const n = 50
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	s := start(t, func(p *logomesh.Plugin) {
		// Every call waits until all n are running at once: served one at a time, it hangs.
		p.Handle("barrier", func(ctx context.Context, args json.RawMessage) (any, error) {
			mu.Lock()
			arrived++
			if arrived == n {
				close(all)
			}
			mu.Unlock()
			select {
			case <-all:
				return args, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
	})
	want := map[string]float64{}
	for i := 0; i < n; i++ {
		want[s.Conn.Request("barrier", i)] = float64(i)
	}
	for i := 0; i < n; i++ {
		m := s.Conn.Expect("response")
		id, _ := m["correlationId"].(string)
		if v, ok := want[id]; !ok || m["data"] != v {
			t.Fatalf("unexpected response %v", m)
		}
		delete(want, id)
	}
}

func TestHandlerErrors(t *testing.T) {
	s := start(t, func(p *logomesh.Plugin) {
		p.Handle("coded", func(ctx context.Context, args json.RawMessage) (any, error) {
			return nil, logomesh.NewError("LM_INVALID_ARGUMENT", "text must be a string", map[string]any{"field": "text"})
		})
		p.Handle("wrapped", func(ctx context.Context, args json.RawMessage) (any, error) {
			return nil, fmt.Errorf("while reading: %w", logomesh.Errorf("MY_CODE", "no %s", "data"))
		})
		p.Handle("plain", func(ctx context.Context, args json.RawMessage) (any, error) { return nil, errors.New("boom") })
		p.Handle("panics", func(ctx context.Context, args json.RawMessage) (any, error) { panic("kaboom") })
		p.Handle("unencodable", func(ctx context.Context, args json.RawMessage) (any, error) { return make(chan int), nil })
		p.Handle("typed", logomesh.Typed(func(ctx context.Context, in struct{ N int }) (int, error) { return in.N, nil }))
	})
	cases := []struct {
		method  string
		data    any
		code    string
		message string
		details string
	}{
		{"coded", nil, "LM_INVALID_ARGUMENT", "text must be a string", `{"field":"text"}`},
		{"wrapped", nil, "MY_CODE", "no data", `{}`},
		{"plain", nil, "LM_PLUGIN_ERROR", "boom", `{"type":"*errors.errorString"}`},
		{"panics", nil, "LM_PLUGIN_ERROR", "method panics panicked: kaboom", `{"type":"panic"}`},
		{"unencodable", nil, "LM_PLUGIN_ERROR", "the result of unencodable cannot be encoded as JSON", `{}`},
		{"typed", msg{"N": "seven"}, "LM_INVALID_ARGUMENT", "invalid arguments for typed", `{"method":"typed"}`},
		{"missing", nil, "LM_METHOD_NOT_FOUND", `plugin tester has no method "missing"`, `{"method":"missing","methods":["coded","panics","plain","typed","unencodable","wrapped"]}`},
	}
	for _, c := range cases {
		e := callError(t, s.Conn, c.method, c.data)
		msgText, _ := e["message"].(string)
		if e["code"] != c.code || !strings.HasPrefix(msgText, c.message) || asJSON(t, e["details"]) != c.details {
			t.Errorf("%s: error = %v, want code %s, message %q..., details %s", c.method, e, c.code, c.message, c.details)
		}
	}
	// The plugin still serves after all that.
	if got := call(t, s.Conn, "typed", msg{"N": 7}); got != float64(7) {
		t.Fatalf("typed = %v", got)
	}
}

func TestRequestContext(t *testing.T) {
	type seen struct {
		From, Method string
		HasDeadline  bool
	}
	got := make(chan seen, 2)
	s := start(t, func(p *logomesh.Plugin) {
		p.Handle("who", func(ctx context.Context, args json.RawMessage) (any, error) {
			_, ok := ctx.Deadline()
			req := logomesh.RequestOf(ctx)
			got <- seen{req.From, req.Method, ok}
			return nil, nil
		})
	})
	call(t, s.Conn, "who", nil)
	s.Conn.Send(msg{"type": "request", "id": "t1", "from": "caller", "method": "who", "timeout": 5000})
	s.Conn.Response("t1")
	if a, b := <-got, <-got; a != (seen{"host", "who", false}) || b != (seen{"caller", "who", true}) {
		t.Fatalf("request info %v, %v", a, b)
	}
}

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

func TestEmitAndBroadcast(t *testing.T) {
	s := start(t, nil)
	ctx := context.Background()
	if err := s.Plugin.Emit(ctx, "thought.added", msg{"text": "hi"}); err != nil {
		t.Fatal(err)
	}
	m := s.Conn.Expect("event")
	if m["topic"] != "thought.added" || asJSON(t, m["data"]) != `{"text":"hi"}` || m["id"] == "" || m["to"] != nil {
		t.Fatalf("event = %v", m)
	}
	if err := s.Plugin.EmitTo(ctx, []string{"indexer"}, "thought.added", 1); err != nil {
		t.Fatal(err)
	}
	if m := s.Conn.Expect("event"); asJSON(t, m["to"]) != `["indexer"]` || m["data"] != float64(1) {
		t.Fatalf("event = %v", m)
	}
	if err := s.Plugin.Broadcast(ctx, "cache.flush", nil); err != nil {
		t.Fatal(err)
	}
	if m := s.Conn.Expect("broadcast"); m["topic"] != "cache.flush" || m["data"] != nil {
		t.Fatalf("broadcast = %v", m)
	}
	if err := s.Plugin.Broadcast(ctx, "", "all"); err != nil {
		t.Fatal(err)
	}
	if m := s.Conn.Expect("broadcast"); m["data"] != "all" {
		t.Fatalf("broadcast = %v", m)
	} else if _, has := m["topic"]; has {
		t.Fatalf("a broadcast without topic carries one: %v", m)
	}
	if err := s.Plugin.Emit(ctx, "", nil); logomesh.CodeOf(err) != logomesh.CodeInvalidArgument {
		t.Fatalf("Emit without topic = %v", err)
	}
	// The hub refusing an event is logged, not fatal.
	s.Conn.Send(msg{"type": "error", "id": "e9", "correlationId": "1234", "error": msg{"code": "LM_PERMISSION_DENIED", "message": "messaging is off"}})
	if e := callError(t, s.Conn, "missing", nil); e["code"] != logomesh.CodeMethodNotFound {
		t.Fatalf("after a hub error: %v", e)
	}
}

func TestOnDispatchesMatchingTopics(t *testing.T) {
	type got struct{ handler, kind, topic, from, data string }
	seen := make(chan got, 32)
	record := func(name string) logomesh.EventHandler {
		return func(ctx context.Context, ev logomesh.Event) {
			seen <- got{name, ev.Kind, ev.Topic, ev.From, string(ev.Data)}
		}
	}
	s := connect(t, func(p *logomesh.Plugin) {
		p.On("thought.*", record("prefix"))
		p.On("cache.flush", record("exact"))
		p.On("*", record("all"))
	})
	s.Conn.Handshake()
	for _, topic := range []string{"thought.*", "cache.flush", "*"} {
		sub := s.Conn.Expect("subscribe")
		if sub["topic"] != topic {
			t.Fatalf("subscribe = %v, want topic %s", sub, topic)
		}
		s.Conn.Answer(sub, nil)
	}
	send := func(kind, topic string, data any) {
		m := msg{"type": kind, "id": "ev", "from": "writer", "timestamp": 1, "data": data}
		if topic != "" {
			m["topic"] = topic
		}
		s.Conn.Send(m)
	}
	send("event", "thought.added", msg{"text": "hi"})
	send("broadcast", "cache.flush", nil)
	send("broadcast", "", 5)
	send("event", "thoughts", "no prefix match")
	want := []got{
		{"prefix", "event", "thought.added", "writer", `{"text":"hi"}`},
		{"all", "event", "thought.added", "writer", `{"text":"hi"}`},
		{"exact", "broadcast", "cache.flush", "writer", `null`},
		{"all", "broadcast", "cache.flush", "writer", `null`},
		{"all", "broadcast", "", "writer", `5`},
		{"all", "event", "thoughts", "writer", `"no prefix match"`},
	}
	for i, w := range want {
		select {
		case g := <-seen:
			if g != w {
				t.Fatalf("delivery %d = %+v, want %+v", i, g, w)
			}
		case <-time.After(logomeshtest.Wait):
			t.Fatalf("delivery %d (%+v) did not happen", i, w)
		}
	}

	// After Run: On subscribes at once, a second handler of the same topic does not
	// subscribe again, and Off unsubscribes.
	s.Plugin.On("late.topic", record("late"))
	if sub := s.Conn.Expect("subscribe"); sub["topic"] != "late.topic" {
		t.Fatalf("subscribe = %v", sub)
	}
	s.Plugin.On("late.topic", record("late2"))
	s.Plugin.Off("late.topic")
	if m := s.Conn.Expect("unsubscribe"); m["topic"] != "late.topic" {
		t.Fatalf("unsubscribe = %v", m)
	}
	send("event", "late.topic", 1)
	if g := <-seen; g.handler != "all" {
		t.Fatalf("handler removed by Off still called: %+v", g)
	}
}

func TestEventHandlerPanicIsContained(t *testing.T) {
	seen := make(chan string, 2)
	s := connect(t, func(p *logomesh.Plugin) {
		p.On("x", func(ctx context.Context, ev logomesh.Event) {
			if string(ev.Data) == `"bad"` {
				panic("bad event")
			}
			seen <- string(ev.Data)
		})
	})
	s.Conn.Handshake()
	s.Conn.Answer(s.Conn.Expect("subscribe"), nil)
	s.Conn.Send(msg{"type": "event", "id": "1", "topic": "x", "data": "bad"})
	s.Conn.Send(msg{"type": "event", "id": "2", "topic": "x", "data": "good"})
	if got := <-seen; got != `"good"` {
		t.Fatalf("event = %s", got)
	}
}

func TestShutdownMessage(t *testing.T) {
	release := make(chan struct{})
	s := start(t, func(p *logomesh.Plugin) {
		p.Handle("slow", func(ctx context.Context, args json.RawMessage) (any, error) {
			<-release
			return "finished", nil
		})
	})
	inFlight := s.Conn.Request("slow", nil)
	s.Conn.Send(msg{"type": "shutdown", "id": "sd", "data": msg{"graceMs": 5000}})
	// New requests are refused once shutdown has been read...
	if e := callError(t, s.Conn, "slow", nil); e["code"] != logomesh.CodePluginUnavailable {
		t.Fatalf("request during shutdown: %v", e)
	}
	// ...the one in flight still answers, then the plugin closes with 1000.
	close(release)
	if m := s.Conn.Response(inFlight); m["data"] != "finished" {
		t.Fatalf("in-flight response = %v", m)
	}
	if code := s.Conn.WaitClosed(); code != websocket.CloseNormalClosure {
		t.Fatalf("close status %d", code)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("RunContext = %v", err)
	}
}

func TestShutdownGraceIsBounded(t *testing.T) {
	cancelled := make(chan struct{})
	s := start(t, func(p *logomesh.Plugin) {
		p.Handle("stuck", func(ctx context.Context, args json.RawMessage) (any, error) {
			<-ctx.Done()
			close(cancelled)
			return nil, ctx.Err()
		})
	})
	s.Conn.Request("stuck", nil)
	time.Sleep(20 * time.Millisecond) // let the request start
	started := time.Now()
	s.Conn.Send(msg{"type": "shutdown", "id": "sd", "data": msg{"graceMs": 100}})
	if code := s.Conn.WaitClosed(); code != websocket.CloseNormalClosure {
		t.Fatalf("close status %d", code)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("RunContext = %v", err)
	}
	if d := time.Since(started); d < 100*time.Millisecond || d > 2*time.Second {
		t.Fatalf("shutdown took %v with a 100 ms grace", d)
	}
	select {
	case <-cancelled:
	case <-time.After(logomeshtest.Wait):
		t.Fatal("the handler's context was not cancelled after the grace period")
	}
}

func TestAnswersPings(t *testing.T) {
	start(t, nil).Conn.Ping("hb")
}

func TestHandleRejectsMistakes(t *testing.T) {
	mustPanic := func(name string, fn func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		fn()
	}
	p := logomesh.New(logomesh.WithSocket(""))
	p.Handle("ok", echo)
	mustPanic("bad name", func() { p.Handle("bad-name", echo) })
	mustPanic("duplicate", func() { p.Handle("ok", echo) })
	mustPanic("nil handler", func() { p.Handle("nil", nil) })
	_ = p.RunContext(context.Background())
	mustPanic("after Run", func() { p.Handle("late", echo) })
	if err := p.RunContext(context.Background()); err == nil {
		t.Error("a second Run did not fail")
	}
}

func TestErrorJSON(t *testing.T) {
	b, _ := json.Marshal(logomesh.Errorf("X", "y %d", 1))
	if string(b) != `{"code":"X","message":"y 1","details":{}}` {
		t.Fatalf("marshal = %s", b)
	}
	var e logomesh.Error
	if err := json.Unmarshal([]byte(`{"code":"X","message":"m","details":[1]}`), &e); err != nil || fmt.Sprint(e.Details["value"]) != "[1]" {
		t.Fatalf("unmarshal = %#v, %v", e, err)
	}
	if e.Error() != "X: m" {
		t.Fatalf("Error() = %q", e.Error())
	}
}

// TestHelperPlugin is the plugin process of TestSignals (it runs only when asked to).
func TestHelperPlugin(t *testing.T) {
	if os.Getenv("LM_SDK_HELPER") != "1" {
		t.Skip("helper process for TestSignals")
	}
	sdk := logomesh.New()
	sdk.Handle("slow", func(ctx context.Context, args json.RawMessage) (any, error) {
		time.Sleep(300 * time.Millisecond)
		return "done", nil
	})
	sdk.Handle("ping", func(ctx context.Context, args json.RawMessage) (any, error) { return "pong", nil })
	if os.Getenv("LM_SDK_HELPER_SUBSCRIBE") == "1" {
		var mu sync.Mutex
		var pokes []string
		sdk.On("helper.poke", func(ctx context.Context, ev logomesh.Event) {
			mu.Lock()
			pokes = append(pokes, string(ev.Data))
			mu.Unlock()
		})
		sdk.Handle("pokes", func(ctx context.Context, args json.RawMessage) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			return append([]string{}, pokes...), nil
		})
	}
	if err := sdk.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1) // as log.Fatal(err) in a plugin's main
	}
	os.Exit(0)
}

func TestSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			h := logomeshtest.NewHub(t)
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPlugin$")
			cmd.Env = append(os.Environ(), "LM_SDK_HELPER=1", "LOGOMESH_HUB_SOCKET="+h.Socket(), "LOGOMESH_PLUGIN_ID=tester")
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				_ = cmd.Process.Kill()
				if t.Failed() {
					t.Logf("plugin output:\n%s", out.String())
				}
			}()
			c := h.Accept()
			c.Handshake()
			slow := c.Request("slow", nil)
			call(t, c, "ping", nil) // slow has been read and is in flight
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if m := c.Response(slow); m["data"] != "done" {
				t.Fatalf("in-flight response = %v", m)
			}
			if code := c.WaitClosed(); code != websocket.CloseNormalClosure {
				t.Fatalf("close status %d", code)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("plugin exit: %v", err)
				}
			case <-time.After(logomeshtest.Wait):
				t.Fatal("the plugin did not exit")
			}
		})
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

// noticed waits until the plugin has logged that its connection is lost.
func noticed(t *testing.T, s *logomeshtest.Session) {
	t.Helper()
	deadline := time.Now().Add(logomeshtest.Wait)
	for !strings.Contains(s.Logs(), "hub connection lost") {
		if time.Now().After(deadline) {
			t.Fatal("the plugin did not notice the lost connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReconnectSaysHelloAgainSubscribesAgainAndServesAgain(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	events := make(chan string, 4)
	s := connect(t, func(p *logomesh.Plugin) {
		p.Handle("echo", echo)
		p.Handle("held", func(ctx context.Context, args json.RawMessage) (any, error) {
			close(started)
			<-release
			return "late", nil
		})
		p.On("thought.added", func(ctx context.Context, ev logomesh.Event) { events <- string(ev.Data) })
	}, logomesh.WithReconnect(10*time.Second))
	first := s.Conn.Handshake()
	s.Conn.Answer(s.Conn.Expect("subscribe"), nil)
	call(t, s.Conn, "echo", 1)
	// A call of the plugin's in flight, and a request the plugin is serving.
	inFlight := calling(func() (json.RawMessage, error) {
		return s.Plugin.Call(context.Background(), "black.hole", nil, 10*time.Second)
	})
	s.Conn.Expect("request")
	s.Conn.Request("held", nil)
	<-started

	s.Hub.Crash()
	if err := inFlight.get(t).err; logomesh.CodeOf(err) != logomesh.CodePluginUnavailable || !strings.Contains(err.Error(), "hub connection lost") {
		t.Fatalf("call in flight = %v", err)
	}
	noticed(t, s)
	// Calls made now wait for the connection; events cannot be sent.
	waiting := calling(func() (json.RawMessage, error) {
		return s.Plugin.Call(context.Background(), "tokenizer.tokenize", msg{"text": "a b"}, 5*time.Second)
	})
	if err := s.Plugin.Emit(context.Background(), "thought.added", "lost"); logomesh.CodeOf(err) != logomesh.CodePluginUnavailable {
		t.Fatalf("Emit while reconnecting = %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	select {
	case r := <-waiting:
		t.Fatalf("a call made while reconnecting returned before the hub was back: %v", r.err)
	default:
	}

	s.Hub.Restart()
	c := s.Hub.Accept()
	hello := c.Handshake()
	if asJSON(t, hello["methods"]) != asJSON(t, first["methods"]) || hello["sdk"] != first["sdk"] {
		t.Fatalf("hello again = %v, first %v", hello, first)
	}
	sub := c.Expect("subscribe")
	if sub["topic"] != "thought.added" {
		t.Fatalf("subscribe again = %v", sub)
	}
	c.Answer(sub, nil)
	req := c.Expect("request")
	if req["method"] != "tokenize" || req["timeout"].(float64) > 4600 {
		t.Fatalf("the waiting call = %v (its timeout is what is left of 5 s)", req)
	}
	c.Answer(req, []string{"a", "b"})
	if r := waiting.get(t); r.err != nil || string(r.raw) != `["a","b"]` {
		t.Fatalf("the waiting call = %s, %v", r.raw, r.err)
	}

	// Serving again: requests, events, emits.
	if got := call(t, c, "echo", 2); got != float64(2) {
		t.Fatalf("echo = %v", got)
	}
	c.Event("writer", "thought.added", "after")
	select {
	case got := <-events:
		if got != `"after"` {
			t.Fatalf("event = %s", got)
		}
	case <-time.After(logomeshtest.Wait):
		t.Fatal("no event after reconnecting")
	}
	if err := s.Plugin.Emit(context.Background(), "thought.added", "back"); err != nil {
		t.Fatal(err)
	}
	if m := c.Expect("event"); m["data"] != "back" {
		t.Fatalf("event = %v", m)
	}
	// The request served across the loss: its answer cannot be delivered.
	close(release)
	c.Quiet(200 * time.Millisecond)
	logs := s.Logs()
	if !strings.Contains(logs, "plugin tester: hub connection lost (code 1006); reconnecting for up to 10000 ms\n") ||
		!regexp.MustCompile(`plugin tester: reconnected to the hub after \d+ ms\n`).MatchString(logs) {
		t.Fatalf("SDK log:\n%s", logs)
	}
}

func TestReconnectToAHubStillListeningIsImmediate(t *testing.T) {
	s := start(t, func(p *logomesh.Plugin) { p.Handle("echo", echo) })
	began := time.Now()
	s.Conn.Drop()
	c := s.Hub.Accept()
	c.Handshake()
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("reconnected after %v", d)
	}
	call(t, c, "echo", 1)
	// A close with a status, without shutdown, is a lost connection too.
	c.Close(websocket.CloseGoingAway, "going away")
	c = s.Hub.Accept()
	c.Handshake()
	call(t, c, "echo", 2)
}

func TestCallWhileReconnectingFailsWhenItsTimeoutPasses(t *testing.T) {
	s := start(t, nil, logomesh.WithReconnect(10*time.Second))
	s.Hub.Crash()
	noticed(t, s)
	began := time.Now()
	_, err := s.Plugin.Call(context.Background(), "x.y", nil, 300*time.Millisecond)
	if logomesh.CodeOf(err) != logomesh.CodePluginUnavailable || time.Since(began) < 290*time.Millisecond || time.Since(began) > 2*time.Second {
		t.Fatalf("Call = %v after %v", err, time.Since(began))
	}
}

func TestReconnectGivesUpAfterTheWindow(t *testing.T) {
	s := start(t, nil, logomesh.WithReconnect(400*time.Millisecond))
	s.Hub.Crash()
	began := time.Now()
	noticed(t, s)
	waiting := calling(func() (json.RawMessage, error) {
		return s.Plugin.Call(context.Background(), "x.y", nil, 30*time.Second)
	})
	err := s.Wait()
	if logomesh.CodeOf(err) != logomesh.CodeControllerUnavailable || !strings.Contains(err.Error(), "within 400 ms") {
		t.Fatalf("RunContext = %v", err)
	}
	if d := time.Since(began); d < 300*time.Millisecond || d > 3*time.Second {
		t.Fatalf("gave up after %v", d)
	}
	// A call waiting for the connection learns that the plugin stopped serving.
	if err := waiting.get(t).err; logomesh.CodeOf(err) != logomesh.CodeControllerUnavailable {
		t.Fatalf("waiting Call = %v", err)
	}
}

func TestHelloRefusedOnReconnectEndsRun(t *testing.T) {
	s := start(t, func(p *logomesh.Plugin) { p.Handle("echo", echo) }, logomesh.WithReconnect(10*time.Second))
	s.Hub.Crash()
	s.Hub.Restart()
	c := s.Hub.Accept()
	fail(c, c.Expect("hello"), msg{"code": "LM_PERMISSION_DENIED", "message": "echo is not exposed"})
	if err := s.Wait(); logomesh.CodeOf(err) != logomesh.CodePermissionDenied {
		t.Fatalf("RunContext = %v", err)
	}
}

func TestStopWhileReconnecting(t *testing.T) {
	s := start(t, nil, logomesh.WithReconnect(10*time.Second))
	s.Hub.Crash()
	noticed(t, s)
	time.Sleep(300 * time.Millisecond)
	began := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("RunContext = %v", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("stopped after %v", d)
	}
}

// helper starts TestHelperPlugin as a process against h (with subscriptions) and returns
// its exit and output.
func helper(t *testing.T, h *logomeshtest.Hub, env ...string) (*exec.Cmd, <-chan error, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPlugin$")
	cmd.Env = append(append(os.Environ(), "LM_SDK_HELPER=1", "LM_SDK_HELPER_SUBSCRIBE=1", "LOGOMESH_HUB_SOCKET="+h.Socket(), "LOGOMESH_PLUGIN_ID=tester"), env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("plugin output:\n%s", out.String())
		}
	})
	return cmd, exited, out
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func exitCode(t *testing.T, exited <-chan error) int {
	t.Helper()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(logomeshtest.Wait):
		t.Fatal("the plugin did not exit")
		return -1
	}
}

func TestReconnectAsAProcess(t *testing.T) {
	h := logomeshtest.NewHub(t)
	cmd, exited, out := helper(t, h)
	c := h.Accept()
	c.Handshake()
	c.Answer(c.Expect("subscribe"), nil)
	call(t, c, "ping", nil)
	h.Crash()
	time.Sleep(500 * time.Millisecond)
	if cmd.ProcessState != nil {
		t.Fatal("the plugin exited on a lost connection")
	}
	h.Restart()
	c = h.Accept()
	if got := asJSON(t, c.Handshake()["methods"]); got != `["ping","pokes","slow"]` {
		t.Fatalf("methods = %s", got)
	}
	if sub := c.Expect("subscribe"); sub["topic"] != "helper.poke" {
		t.Fatalf("subscribe = %v", sub)
	} else {
		c.Answer(sub, nil)
	}
	if got := call(t, c, "ping", nil); got != "pong" {
		t.Fatalf("ping = %v", got)
	}
	c.Event("other", "helper.poke", "after")
	deadline := time.Now().Add(logomeshtest.Wait)
	for asJSON(t, call(t, c, "pokes", nil)) != `["\"after\""]` {
		if time.Now().After(deadline) {
			t.Fatal("the event after reconnecting was not handled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Shutdown(2 * time.Second)
	if code := c.WaitClosed(); code != websocket.CloseNormalClosure {
		t.Fatalf("close status %d", code)
	}
	if code := exitCode(t, exited); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	logs := out.String()
	if !strings.Contains(logs, "logomesh: plugin tester: hub connection lost (code 1006); reconnecting for up to 60000 ms\n") ||
		!regexp.MustCompile(`logomesh: plugin tester: reconnected to the hub after \d+ ms\n`).MatchString(logs) {
		t.Fatalf("output:\n%s", logs)
	}
}

func TestNoHubWithinTheReconnectWindowExits1(t *testing.T) {
	h := logomeshtest.NewHub(t)
	_, exited, out := helper(t, h, "LOGOMESH_RECONNECT_MS=300")
	c := h.Accept()
	c.Handshake()
	c.Answer(c.Expect("subscribe"), nil)
	h.Crash()
	began := time.Now()
	if code := exitCode(t, exited); code != 1 {
		t.Fatalf("exit status %d", code)
	}
	if d := time.Since(began); d < 250*time.Millisecond {
		t.Fatalf("exited after %v", d)
	}
	logs := out.String()
	if !strings.Contains(logs, "reconnecting for up to 300 ms") || !strings.Contains(logs, "LM_CONTROLLER_UNAVAILABLE") || strings.Contains(logs, "reconnected") {
		t.Fatalf("output:\n%s", logs)
	}
}

func TestSigtermWhileReconnectingExits0(t *testing.T) {
	h := logomeshtest.NewHub(t)
	cmd, exited, out := helper(t, h)
	c := h.Accept()
	c.Handshake()
	c.Answer(c.Expect("subscribe"), nil)
	h.Crash()
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, exited); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if !strings.Contains(out.String(), "hub connection lost") {
		t.Fatalf("output:\n%s", out.String())
	}
}
