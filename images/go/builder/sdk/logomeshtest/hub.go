// Package logomeshtest runs a LogoMesh plugin against a fake hub in a Go test: the hub's
// side of the protocol on a Unix socket, driven step by step by the test, so a plugin's
// methods, calls and events can be checked without LogoMesh or Docker.
//
//	func TestTokenize(t *testing.T) {
//		s := logomeshtest.Start(t, register) // register(p) adds the plugin's handlers
//		data, err := s.Conn.Call("tokenize", map[string]any{"text": "Hello world"})
//		...
//	}
//
// Every method that waits gives up after Wait and fails the test; call them from the test's
// goroutine.
package logomeshtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"logomesh.local/logomesh"
)

// Wait bounds every step that waits for the plugin.
var Wait = 5 * time.Second

// Message is a protocol message as decoded JSON.
type Message = map[string]any

// Hub is a fake hub listening on a Unix socket.
type Hub struct {
	t      testing.TB
	socket string
	conns  chan *Conn

	mu   sync.Mutex
	srv  *http.Server
	ln   *net.UnixListener
	live []*Conn
}

// NewHub listens on a socket in a new temporary folder; it stops when the test ends.
func NewHub(t testing.TB) *Hub {
	t.Helper()
	// A short path: Unix socket paths are limited to 108 bytes, test names are not.
	dir, err := os.MkdirTemp("", "lmhub")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return NewHubAt(t, filepath.Join(dir, "hub.sock"))
}

// NewHubAt listens on the given socket path; it stops when the test ends.
func NewHubAt(t testing.TB, socket string) *Hub {
	t.Helper()
	h := &Hub{t: t, socket: socket, conns: make(chan *Conn, 4)}
	h.listen()
	t.Cleanup(func() {
		h.mu.Lock()
		srv := h.srv
		h.srv = nil
		h.mu.Unlock()
		if srv != nil {
			_ = srv.Close()
		}
	})
	return h
}

func (h *Hub) listen() {
	h.t.Helper()
	ln, err := net.Listen("unix", h.socket)
	if err != nil {
		h.t.Fatal(err)
	}
	up := websocket.Upgrader{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := newConn(h.t, ws, r)
		h.mu.Lock()
		h.live = append(h.live, c)
		h.mu.Unlock()
		h.conns <- c
	})}
	h.mu.Lock()
	h.srv, h.ln = srv, ln.(*net.UnixListener)
	h.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Crash stops the hub as kill -9 stops a controller: every connection drops without a
// close frame and nothing listens any more; the socket file stays behind, refusing
// connections, until Restart.
func (h *Hub) Crash() {
	h.mu.Lock()
	srv, ln, live := h.srv, h.ln, h.live
	h.srv, h.ln, h.live = nil, nil, nil
	h.mu.Unlock()
	if srv != nil {
		ln.SetUnlinkOnClose(false)
		_ = srv.Close()
	}
	for _, c := range live {
		c.Drop()
	}
}

// Restart listens again at the same path after Crash, as a restarted controller does
// (replacing the stale socket file); the plugin's new connection comes from Accept.
func (h *Hub) Restart() {
	h.t.Helper()
	_ = os.Remove(h.socket)
	h.listen()
}

// Socket is the hub's socket path, for logomesh.WithSocket or LOGOMESH_HUB_SOCKET.
func (h *Hub) Socket() string { return h.socket }

// Accept waits for a plugin to connect.
func (h *Hub) Accept() *Conn {
	h.t.Helper()
	select {
	case c := <-h.conns:
		return c
	case <-time.After(Wait):
		h.t.Fatal("logomeshtest: the plugin did not connect")
		return nil
	}
}

// Conn is the hub's end of one plugin connection.
type Conn struct {
	// Path and Host of the plugin's upgrade request (/v1 and logomesh).
	Path, Host string
	// PluginID is the plugin's id as the hub's answers name it ("plugin" unless set).
	PluginID string

	t         testing.TB
	ws        *websocket.Conn
	in        chan Message
	closed    chan struct{}
	closeCode int
	pongs     chan string
	wmu       sync.Mutex
	seq       int
}

func newConn(t testing.TB, ws *websocket.Conn, r *http.Request) *Conn {
	c := &Conn{Path: r.URL.Path, Host: r.Host, PluginID: "plugin", t: t, ws: ws, in: make(chan Message, 1024), closed: make(chan struct{}), pongs: make(chan string, 4)}
	ws.SetPongHandler(func(data string) error {
		select {
		case c.pongs <- data:
		default:
		}
		return nil
	})
	go c.read()
	t.Cleanup(func() { _ = ws.Close() })
	return c
}

func (c *Conn) read() {
	defer close(c.closed)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.closeCode = ce.Code
			} else {
				c.closeCode = -1
			}
			return
		}
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			m = Message{"type": "<not json>", "raw": string(b)}
		}
		c.in <- m
	}
}

// Send sends one message to the plugin.
func (c *Conn) Send(m Message) {
	c.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("logomeshtest: writing to the plugin: %v", err)
	}
}

// Next returns the next message from the plugin.
func (c *Conn) Next() Message {
	c.t.Helper()
	select {
	case m := <-c.in:
		return m
	case <-time.After(Wait):
		c.t.Fatal("logomeshtest: no message from the plugin")
		return nil
	}
}

// Messages is every message from the plugin, for a test that reads them itself (instead
// of Next); Done is closed when the connection is over.
func (c *Conn) Messages() <-chan Message { return c.in }

// Done is closed when the connection is over.
func (c *Conn) Done() <-chan struct{} { return c.closed }

// Expect returns the next message, failing the test unless it is of type typ.
func (c *Conn) Expect(typ string) Message {
	c.t.Helper()
	m := c.Next()
	if m["type"] != typ {
		c.t.Fatalf("logomeshtest: expected a %s message, got %v", typ, m)
	}
	return m
}

// Quiet fails the test if the plugin sends anything within d.
func (c *Conn) Quiet(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.in:
		c.t.Fatalf("logomeshtest: unexpected message %v", m)
	case <-time.After(d):
	}
}

// Handshake reads the plugin's hello, accepts it and returns it. The hello's
// "subscriptions" are the patterns the plugin registered before Run: the hub subscribes
// them before it answers, so the plugin sends no subscribe for them.
func (c *Conn) Handshake() Message {
	c.t.Helper()
	hello := c.Expect("hello")
	c.Send(Message{"type": "response", "id": "hello-ok", "correlationId": hello["id"], "success": true, "data": Message{"protocol": 1}})
	return hello
}

// HandshakeDeclared reads the plugin's hello and answers it as the hub does for a manifest
// whose coordination.subscribes lists declared: refused with LM_PERMISSION_DENIED when a
// pattern of its subscriptions is not covered by one of them, accepted otherwise. It
// returns the hello.
func (c *Conn) HandshakeDeclared(declared []string) Message {
	c.t.Helper()
	hello := c.Expect("hello")
	var refused []string
	list, _ := hello["subscriptions"].([]any)
	for _, v := range list {
		pattern, _ := v.(string)
		if !coveredBy(declared, pattern) {
			refused = append(refused, fmt.Sprintf("plugin %s may not subscribe to '%s': no pattern under coordination.subscribes covers it (listed: %s)", c.PluginID, pattern, listed(declared)))
		}
	}
	if len(refused) > 0 {
		c.Fail(hello, logomesh.NewError(logomesh.CodePermissionDenied, strings.Join(refused, "; "), nil))
	} else {
		c.Send(Message{"type": "response", "id": "hello-ok", "correlationId": hello["id"], "success": true, "data": Message{"protocol": 1}})
	}
	return hello
}

// Covers reports whether a pattern declared in a manifest covers target (a topic or a
// pattern) whole, as the hub checks a subscription: "a.*" covers "a.b" and "a.b.*", only
// "*" covers "*".
func Covers(declared, target string) bool {
	switch {
	case declared == "*":
		return true
	case target == "*":
		return false
	case strings.HasSuffix(declared, ".*"):
		return strings.HasPrefix(target, declared[:len(declared)-1])
	default:
		return declared == target
	}
}

func coveredBy(declared []string, target string) bool {
	for _, d := range declared {
		if Covers(d, target) {
			return true
		}
	}
	return false
}

func listed(declared []string) string {
	if len(declared) == 0 {
		return "none"
	}
	return strings.Join(declared, ", ")
}

// Request sends a request for method from "host" (timeout 0: none) and returns its id.
func (c *Conn) Request(method string, data any) string {
	c.t.Helper()
	return c.RequestFrom("host", method, data, 0)
}

// RequestFrom sends a request as coming from the plugin or host from, with a timeout in ms
// (0: none), and returns its id.
func (c *Conn) RequestFrom(from, method string, data any, timeoutMs int) string {
	c.t.Helper()
	c.seq++
	id := fmt.Sprintf("req-%d", c.seq)
	m := Message{"type": "request", "id": id, "from": from, "timestamp": time.Now().UnixMilli(), "method": method, "data": data}
	if timeoutMs > 0 {
		m["timeout"] = timeoutMs
	}
	c.Send(m)
	return id
}

// Response reads the next message, failing the test unless it is the response to id.
func (c *Conn) Response(id string) Message {
	c.t.Helper()
	m := c.Expect("response")
	if m["correlationId"] != id {
		c.t.Fatalf("logomeshtest: expected the response to %s, got %v", id, m)
	}
	return m
}

// Call requests method and waits for its response: the result as JSON, or the
// *logomesh.Error of a failed response.
func (c *Conn) Call(method string, data any) (json.RawMessage, error) {
	c.t.Helper()
	m := c.Response(c.Request(method, data))
	return result(c.t, m)
}

func result(t testing.TB, m Message) (json.RawMessage, error) {
	t.Helper()
	if m["success"] == true {
		b, err := json.Marshal(m["data"])
		if err != nil {
			t.Fatal(err)
		}
		return b, nil
	}
	var e logomesh.Error
	b, _ := json.Marshal(m["error"])
	if err := json.Unmarshal(b, &e); err != nil || e.Code == "" {
		t.Fatalf("logomeshtest: a failed response without a coded error: %v", m)
	}
	return nil, &e
}

// Answer responds successfully to a request the plugin sent.
func (c *Conn) Answer(req Message, data any) {
	c.t.Helper()
	c.Send(Message{"type": "response", "id": fmt.Sprint("ans-", req["id"]), "correlationId": req["id"], "success": true, "data": data})
}

// Fail responds to a request the plugin sent (or to its hello) with an error.
func (c *Conn) Fail(req Message, e *logomesh.Error) {
	c.t.Helper()
	c.Send(Message{"type": "response", "id": fmt.Sprint("ans-", req["id"]), "correlationId": req["id"], "success": false, "error": e})
}

// Event delivers an event on topic, as sent by from.
func (c *Conn) Event(from, topic string, data any) {
	c.t.Helper()
	c.seq++
	c.Send(Message{"type": "event", "id": fmt.Sprintf("ev-%d", c.seq), "from": from, "timestamp": time.Now().UnixMilli(), "topic": topic, "data": data})
}

// Broadcast delivers a broadcast ("" topic: none), as sent by from.
func (c *Conn) Broadcast(from, topic string, data any) {
	c.t.Helper()
	c.seq++
	m := Message{"type": "broadcast", "id": fmt.Sprintf("bc-%d", c.seq), "from": from, "timestamp": time.Now().UnixMilli(), "data": data}
	if topic != "" {
		m["topic"] = topic
	}
	c.Send(m)
}

// Shutdown sends the hub's shutdown message.
func (c *Conn) Shutdown(grace time.Duration) {
	c.t.Helper()
	c.Send(Message{"type": "shutdown", "id": "shutdown", "data": Message{"graceMs": grace.Milliseconds()}})
}

// Ping sends a WebSocket ping and waits for the matching pong.
func (c *Conn) Ping(data string) {
	c.t.Helper()
	if err := c.ws.WriteControl(websocket.PingMessage, []byte(data), time.Now().Add(Wait)); err != nil {
		c.t.Fatal(err)
	}
	select {
	case got := <-c.pongs:
		if got != data {
			c.t.Fatalf("logomeshtest: pong %q for ping %q", got, data)
		}
	case <-time.After(Wait):
		c.t.Fatal("logomeshtest: no pong")
	}
}

// Drop closes the connection abruptly, as a crashed hub would.
func (c *Conn) Drop() { _ = c.ws.Close() }

// Close closes the connection with a close frame of the given status (without a shutdown
// message first: the plugin sees a lost connection).
func (c *Conn) Close(code int, reason string) {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(Wait))
	_ = c.ws.Close()
}

// WaitClosed waits for the plugin to close the connection and returns the close status
// (1000 for a clean shutdown; -1 when it closed without a close frame).
func (c *Conn) WaitClosed() int {
	c.t.Helper()
	select {
	case <-c.closed:
		return c.closeCode
	case <-time.After(Wait):
		c.t.Fatal("logomeshtest: the plugin did not close the connection")
		return 0
	}
}

// Session is a plugin running against a fake hub, in the test's process.
type Session struct {
	Hub    *Hub
	Conn   *Conn
	Plugin *logomesh.Plugin

	cancel   context.CancelFunc
	finished chan struct{}
	result   error
	logs     *logBuffer
}

// Start runs a plugin against a new fake hub and completes the handshake. setup registers
// the plugin's methods and subscriptions (as the plugin's main does before Run). The
// plugin stops when the test ends; a failed test prints the SDK's log.
func Start(t testing.TB, setup func(p *logomesh.Plugin), opts ...logomesh.Option) *Session {
	t.Helper()
	hub := NewHub(t)
	s := Launch(t, hub, setup, opts...)
	s.Hub, s.Conn = hub, hub.Accept()
	s.Conn.Handshake()
	return s
}

// Launch runs a plugin against hub without waiting for it to connect (s.Conn is nil: use
// s.Hub.Accept).
func Launch(t testing.TB, hub *Hub, setup func(p *logomesh.Plugin), opts ...logomesh.Option) *Session {
	t.Helper()
	s := LaunchAt(t, hub.Socket(), setup, opts...)
	s.Hub = hub
	return s
}

// LaunchAt runs a plugin against the hub socket path, which need not exist yet (s.Hub and
// s.Conn are nil).
func LaunchAt(t testing.TB, socket string, setup func(p *logomesh.Plugin), opts ...logomesh.Option) *Session {
	t.Helper()
	logs := &logBuffer{}
	base := []logomesh.Option{logomesh.WithSocket(socket), logomesh.WithPluginID("plugin"), logomesh.WithLogger(log.New(logs, "", 0))}
	p := logomesh.New(append(base, opts...)...)
	if setup != nil {
		setup(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{Plugin: p, cancel: cancel, finished: make(chan struct{}), logs: logs}
	go func() {
		s.result = p.RunContext(ctx)
		close(s.finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.finished:
		case <-time.After(Wait):
			t.Error("logomeshtest: the plugin did not stop")
		}
		if t.Failed() {
			t.Logf("SDK log:\n%s", logs.String())
		}
	})
	return s
}

// Stop shuts the plugin down as SIGTERM would and returns what Run returned.
func (s *Session) Stop() error {
	s.cancel()
	return s.Wait()
}

// Wait waits for the plugin's Run to return (after a shutdown, a refused hello, or a
// connection lost for longer than the reconnect window) and returns its result.
func (s *Session) Wait() error {
	select {
	case <-s.finished:
		return s.result
	case <-time.After(Wait):
		return fmt.Errorf("logomeshtest: Run did not return within %v", Wait)
	}
}

// Logs is what the SDK logged so far.
func (s *Session) Logs() string { return s.logs.String() }

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
