package logomeshtest

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"sync"
	"testing"
	"time"

	"logomesh.local/logomesh"
)

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
