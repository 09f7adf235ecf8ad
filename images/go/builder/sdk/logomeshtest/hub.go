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
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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
