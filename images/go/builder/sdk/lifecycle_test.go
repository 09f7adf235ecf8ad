// Shutdown and reconnecting.

package logomesh_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
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
	if got := asJSON(t, first["subscriptions"]); got != `["thought.added"]` {
		t.Fatalf("hello subscriptions = %s", got)
	}
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
	// A pattern registered meanwhile goes in the next hello too.
	s.Plugin.On("late.*", func(context.Context, logomesh.Event) {})
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
	// The new hello subscribes again: no subscribe message follows (the next one is the call).
	if got := asJSON(t, hello["subscriptions"]); got != `["thought.added","late.*"]` {
		t.Fatalf("hello subscriptions again = %s", got)
	}
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
	call(t, c, "ping", nil)
	h.Crash()
	time.Sleep(500 * time.Millisecond)
	if cmd.ProcessState != nil {
		t.Fatal("the plugin exited on a lost connection")
	}
	h.Restart()
	c = h.Accept()
	if hello := c.Handshake(); asJSON(t, hello["methods"]) != `["ping","pokes","slow"]` || asJSON(t, hello["subscriptions"]) != `["helper.poke"]` {
		t.Fatalf("hello again = %v", hello)
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
