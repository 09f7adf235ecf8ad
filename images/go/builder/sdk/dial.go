package logomesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// dial opens the WebSocket over the hub's Unix socket (GET /v1, Host: logomesh). A socket
// that does not exist yet or refuses is retried until the connect timeout: the hub may
// still be starting.
func (p *Plugin) dial(ctx context.Context) (*websocket.Conn, error) {
	deadline := time.Now().Add(p.connectTimeout)
	backoff := 10 * time.Millisecond
	for {
		conn, resp, err := p.dialer(p.connectTimeout).DialContext(ctx, "ws://logomesh/v1", nil)
		if err == nil {
			return conn, nil
		}
		if resp != nil {
			return nil, Errorf(CodeControllerUnavailable, "the hub at %s refused the connection: HTTP %s", p.socket, resp.Status)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		retry := errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
		if !retry || time.Now().Add(backoff).After(deadline) {
			return nil, Errorf(CodeControllerUnavailable, "cannot connect to the hub at %s: %v", p.socket, err)
		}
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		if backoff *= 2; backoff > 500*time.Millisecond {
			backoff = 500 * time.Millisecond
		}
	}
}

func (p *Plugin) dialer(handshake time.Duration) *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "unix", p.socket)
		},
		HandshakeTimeout: handshake,
	}
}

// dialOnce makes one attempt to connect, for reconnecting (the caller retries).
func (p *Plugin) dialOnce(ctx context.Context, handshake time.Duration) (*websocket.Conn, error) {
	conn, resp, err := p.dialer(handshake).DialContext(ctx, "ws://logomesh/v1", nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("the hub answered the upgrade with HTTP %s", resp.Status)
		}
		return nil, err
	}
	return conn, nil
}
