// Stopping: the hub's shutdown, SIGTERM, SIGINT and the cancellation of RunContext's
// context all end the same way: new requests are refused, those in flight answer within the
// grace period, the connection closes with status 1000.

package logomesh

import (
	"time"

	"github.com/gorilla/websocket"
)

func (p *Plugin) requestDone() {
	p.mu.Lock()
	p.inflight--
	if p.draining && p.inflight == 0 {
		close(p.idle)
	}
	p.mu.Unlock()
}

func (p *Plugin) beginDrain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.draining {
		return
	}
	p.draining = true
	p.idle = make(chan struct{})
	if p.inflight == 0 {
		close(p.idle)
	}
}

// drain waits (at most grace) for the requests in flight, then cancels their contexts.
func (p *Plugin) drain(grace time.Duration, l *link) {
	p.beginDrain()
	p.mu.Lock()
	idle := p.idle
	p.mu.Unlock()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-idle:
	case <-l.gone:
	case <-timer.C:
		p.mu.Lock()
		n := p.inflight
		p.mu.Unlock()
		p.logger.Printf("shutting down with %d request(s) still running after the %v grace period", n, grace)
	}
	p.cancelBase()
}

// close sends a close frame on l, waits briefly for the hub's, and closes the socket.
func (p *Plugin) close(l *link, code int, reason string) {
	deadline := time.Now().Add(closeTimeout)
	_ = l.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
	timer := time.NewTimer(closeTimeout)
	defer timer.Stop()
	select {
	case <-l.gone:
	case <-timer.C:
	}
	_ = l.conn.Close()
	<-l.gone
}

// finish ends Run for good: no connection any more, every waiting call fails.
func (p *Plugin) finish() {
	p.finishOnce.Do(func() {
		p.pmu.Lock()
		p.dead = true
		l := p.link
		waiting := p.pending
		p.pending = map[string]func(*inbound){}
		back := p.back
		p.back = nil
		p.pmu.Unlock()
		p.online.Store(false)
		if l != nil {
			_ = l.conn.Close()
		}
		close(p.gone)
		if back != nil {
			close(back)
		}
		for _, fn := range waiting {
			fn(&inbound{Type: "response", lost: true, Error: Errorf(CodeControllerUnavailable, "the connection to the hub closed before the answer came")})
		}
		// No read loop is left to deliver events: let the event goroutine end.
		p.readers.Wait()
		close(p.events)
	})
}
