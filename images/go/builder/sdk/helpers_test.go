// What the SDK's test files share: a plugin against the fake hub, and small helpers.

package logomesh_test

import (
	"context"
	"encoding/json"
	"testing"

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
