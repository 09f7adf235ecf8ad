package logomeshtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/vmihailenco/msgpack/v5"
)

// Conn is the hub's end of one plugin connection.
type Conn struct {
	// Path and Host of the plugin's upgrade request (/v1 and logomesh).
	Path, Host string
	// PluginID is the plugin's id as the hub's answers name it ("plugin" unless set).
	PluginID string
	// Binary makes Send write binary (msgpack) frames, as the hub does once it answered a
	// hello that offered msgpack with "encoding": "msgpack".
	Binary bool

	t         testing.TB
	ws        *websocket.Conn
	in        chan Message
	closed    chan struct{}
	closeCode int
	pongs     chan string
	wmu       sync.Mutex
	seq       int
	binaryIn  atomic.Int64
}

// BinaryFrames is how many binary (msgpack) frames the plugin has sent on this connection.
func (c *Conn) BinaryFrames() int64 { return c.binaryIn.Load() }

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
		kind, b, err := c.ws.ReadMessage()
		if err == nil && kind == websocket.BinaryMessage {
			c.binaryIn.Add(1)
			b = msgpackAsJSON(b)
		}
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

// msgpackAsJSON is a binary frame as the JSON it carries (nil when it is not msgpack: the
// test then sees a "<not json>" message).
func msgpackAsJSON(b []byte) []byte {
	v, err := msgpack.NewDecoder(bytes.NewReader(b)).DecodeInterfaceLoose()
	if err != nil {
		return nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return j
}

// Send sends one message to the plugin.
func (c *Conn) Send(m Message) {
	c.t.Helper()
	kind, marshal := websocket.TextMessage, json.Marshal
	if c.Binary {
		kind, marshal = websocket.BinaryMessage, msgpack.Marshal
	}
	b, err := marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(kind, b); err != nil {
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
