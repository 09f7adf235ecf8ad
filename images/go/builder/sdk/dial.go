// Dialling the hub: its Unix socket, or across nodes over TCP with a fresh handshake at each
// attempt, retried while the hub starts or moves (docs/protocol.md, "reconnecting").

package logomesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// dial opens the WebSocket to the hub: over its Unix socket (GET /v1, Host: logomesh), or
// across nodes over TCP with a fresh handshake at each attempt (hubauth.go). A socket that
// does not exist yet or refuses is retried until the connect timeout: the hub may still be
// starting. A hub across nodes is waited for as long as a reconnection (it may be moving),
// and its 401 (it does not know the plugin yet, or the key was rotated) is retried with
// backoff, never in a tight loop.
func (p *Plugin) dial(ctx context.Context) (*websocket.Conn, error) {
	tcp := p.hubURL != ""
	window := p.connectTimeout
	if tcp && p.reconnect > window {
		window = p.reconnect
	}
	deadline := time.Now().Add(window)
	backoff := 10 * time.Millisecond
	maxBackoff := 500 * time.Millisecond
	if tcp {
		maxBackoff = reconnectMaxDelay
	}
	for {
		conn, resp, err := p.dialAttempt(ctx, p.connectTimeout)
		if err == nil {
			return conn, nil
		}
		var coded *Error
		if errors.As(err, &coded) {
			return nil, err // no key to connect with
		}
		retry := errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || (tcp && resp == nil)
		if resp != nil {
			if !tcp || !retryableRefusal(resp.StatusCode) {
				return nil, Errorf(CodeControllerUnavailable, "the hub at %s refused the connection: HTTP %s", p.endpoint(), resp.Status)
			}
			p.noteRefusal(resp)
			retry = true
			if backoff < maxBackoff/4 {
				backoff = maxBackoff / 4
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !retry || time.Now().Add(backoff).After(deadline) {
			return nil, Errorf(CodeControllerUnavailable, "cannot connect to the hub at %s: %v", p.endpoint(), err)
		}
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		if backoff *= 2; backoff > maxBackoff {
			backoff = maxBackoff
		}
	}
}

// dialAttempt is one connection attempt to wherever the hub is.
func (p *Plugin) dialAttempt(ctx context.Context, handshake time.Duration) (*websocket.Conn, *http.Response, error) {
	if p.hubURL == "" {
		return p.dialer(handshake).DialContext(ctx, "ws://logomesh/v1", nil)
	}
	header, err := p.hubHeader()
	if err != nil {
		return nil, nil, err
	}
	tlsConfig, err := hubTLS()
	if err != nil {
		return nil, nil, err
	}
	// Proxy stays nil: the hub is never reached through HTTP_PROXY or HTTPS_PROXY, which
	// name the plugin's egress proxy, not a way to its hub.
	d := &websocket.Dialer{HandshakeTimeout: handshake, TLSClientConfig: tlsConfig}
	return d.DialContext(ctx, p.hubURL, header)
}

// endpoint names where the hub is, for messages.
func (p *Plugin) endpoint() string {
	if p.hubURL != "" {
		return p.hubURL
	}
	return p.socket
}

// noteRefusal says once on stderr why the hub refused the connection: its code, never the key or the header.
func (p *Plugin) noteRefusal(resp *http.Response) string {
	why := hubRefusal(resp)
	if why != p.lastRefusal {
		p.lastRefusal = why
		p.logger.Printf("plugin %s: the hub refused the connection: %s; trying again", p.id, why)
	}
	return why
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
	conn, resp, err := p.dialAttempt(ctx, handshake)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("the hub answered the upgrade with %s", p.noteRefusal(resp))
		}
		return nil, err
	}
	return conn, nil
}
