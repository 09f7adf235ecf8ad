package logomeshtest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"logomesh.local/logomesh"
)

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
