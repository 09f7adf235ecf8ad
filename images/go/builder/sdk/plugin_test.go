// The SDK against its fake hub: hello, methods, handler errors, options, signals.

package logomesh_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"logomesh.local/logomesh"
	"logomesh.local/logomesh/logomeshtest"
)

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

func TestAHelloRefusedForASubscriptionEndsRunWithTheHubsError(t *testing.T) {
	s := connect(t, func(p *logomesh.Plugin) {
		p.On("news.flash", func(context.Context, logomesh.Event) {})
		p.On("secrets.*", func(context.Context, logomesh.Event) {})
	})
	s.Conn.PluginID = "tester"
	hello := s.Conn.HandshakeDeclared([]string{"news.*"})
	if got := asJSON(t, hello["subscriptions"]); got != `["news.flash","secrets.*"]` {
		t.Fatalf("hello subscriptions = %s", got)
	}
	err := s.Wait()
	want := "plugin tester may not subscribe to 'secrets.*': no pattern under coordination.subscribes covers it (listed: news.*)"
	if e := (*logomesh.Error)(nil); !errors.As(err, &e) || e.Code != logomesh.CodePermissionDenied || e.Message != want {
		t.Fatalf("RunContext = %#v", err)
	}
	s.Conn.WaitClosed()
}

func TestAPatternRegisteredWhileHelloWaitsIsSubscribedAfterIt(t *testing.T) {
	s := connect(t, func(p *logomesh.Plugin) {
		p.On("early", func(context.Context, logomesh.Event) {})
		p.On("dropped", func(context.Context, logomesh.Event) {})
	})
	hello := s.Conn.Expect("hello")
	if got := asJSON(t, hello["subscriptions"]); got != `["early","dropped"]` {
		t.Fatalf("hello subscriptions = %s", got)
	}
	// Not ready yet: these wait for the answer to hello.
	s.Plugin.On("during", func(context.Context, logomesh.Event) {})
	s.Plugin.Off("dropped")
	s.Conn.Quiet(100 * time.Millisecond)
	s.Conn.Answer(hello, msg{"protocol": 1})
	if m := s.Conn.Expect("subscribe"); m["topic"] != "during" {
		t.Fatalf("subscribe = %v", m)
	}
	if m := s.Conn.Expect("unsubscribe"); m["topic"] != "dropped" {
		t.Fatalf("unsubscribe = %v", m)
	}
}

func TestARefusedSubscribeWhileServingIsLoggedAndNotInTheNextHello(t *testing.T) {
	s := start(t, func(p *logomesh.Plugin) {
		p.On("news.flash", func(context.Context, logomesh.Event) {})
	}, logomesh.WithReconnect(10*time.Second))
	s.Plugin.On("secrets.plans", func(context.Context, logomesh.Event) {})
	sub := s.Conn.Expect("subscribe")
	fail(s.Conn, sub, msg{"code": "LM_PERMISSION_DENIED", "message": "plugin tester may not subscribe to 'secrets.plans'"})
	deadline := time.Now().Add(logomeshtest.Wait)
	for !strings.Contains(s.Logs(), `subscribing to "secrets.plans" refused, its handlers dropped: LM_PERMISSION_DENIED`) {
		if time.Now().After(deadline) {
			t.Fatalf("logs:\n%s", s.Logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if m := callError(t, s.Conn, "missing", nil); m["code"] != logomesh.CodeMethodNotFound {
		t.Fatalf("still serving: %v", m)
	}
	// Had the refused handler stayed, the next hello would name secrets.plans and a real
	// hub would refuse all of it: the plugin would end at its first reconnect.
	s.Hub.Crash()
	s.Hub.Restart()
	hello := s.Hub.Accept().Handshake()
	if got := asJSON(t, hello["subscriptions"]); got != `["news.flash"]` {
		t.Fatalf("hello subscriptions after the refusal = %s", got)
	}
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

func TestARequestRightBehindTheAnswerToHelloSubscribesBeforeItAnswers(t *testing.T) {
	s := connect(t, func(p *logomesh.Plugin) {
		p.Handle("listen", logomesh.Typed(func(_ context.Context, in struct{ Topic string }) (string, error) {
			p.On(in.Topic, func(context.Context, logomesh.Event) {})
			return in.Topic, nil
		}))
	})
	hello := s.Conn.Expect("hello")
	s.Conn.Answer(hello, msg{"protocol": 1})
	id := s.Conn.Request("listen", msg{"topic": "right.behind"})
	if m := s.Conn.Expect("subscribe"); m["topic"] != "right.behind" {
		t.Fatalf("first message after hello = %v", m)
	}
	if m := s.Conn.Response(id); m["success"] != true {
		t.Fatalf("listen = %v", m)
	}
}
