// The connection to the hub once dialled (dial.go): hello, reading, writing, and reconnecting
// after a loss (docs/protocol.md, "reconnecting").

package logomesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gorilla/websocket"
)

// attach makes conn the current connection and starts reading it. Until the hub announces
// its maximum message size, the largest an operator may configure holds; a frame over that
// is not read at all (gorilla closes the connection with 1009).
func (p *Plugin) attach(conn *websocket.Conn) *link {
	conn.SetReadLimit(MaxMessageBytes)
	p.limit.Store(0)
	p.pmu.Lock()
	p.gen++
	l := &link{conn: conn, gen: p.gen, gone: make(chan struct{})}
	p.link = l
	p.pmu.Unlock()
	p.readers.Add(1)
	go p.readLoop(l)
	return l
}

// hello says hello with the methods and, as its subscriptions, every pattern registered so
// far (the hub subscribes them before it answers, so no event published once the plugin is
// ready is missed), and waits for the answer. It returns the patterns it sent. On the first
// connection (first), the plugin is marked ready as the answer is read, before the next
// frame: a request right behind it whose handler calls On subscribes before it answers. A
// refusal (a method or a topic the manifest does not declare, say) is the hub's *Error,
// which Run returns (and a plugin's main prints).
func (p *Plugin) hello(ctx context.Context, methods []string, timeout time.Duration, first bool) ([]string, error) {
	patterns := p.patterns()
	return patterns, p.exchangeHello(ctx, methods, patterns, timeout, first)
}

// patterns is every distinct pattern of the On handlers, in the order registered.
func (p *Plugin) patterns() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[string]bool{}
	patterns := []string{}
	for _, s := range p.subs {
		if !seen[s.pattern] {
			seen[s.pattern] = true
			patterns = append(patterns, s.pattern)
		}
	}
	return patterns
}

func (p *Plugin) exchangeHello(ctx context.Context, methods, patterns []string, timeout time.Duration, first bool) error {
	id := p.newID()
	reply := make(chan *inbound, 1)
	if !p.addWaiter(id, func(m *inbound) {
		if m.Success && !m.lost {
			p.pmu.Lock()
			p.established = true
			p.pmu.Unlock()
			var said helloAnswer
			if json.Unmarshal(m.Data, &said) == nil && said.MaxMessageBytes > 0 && said.MaxMessageBytes <= MaxMessageBytes {
				p.limit.Store(said.MaxMessageBytes)
			}
			if p.frames == FramesMsgpack && said.Encoding == FramesMsgpack {
				p.pmu.Lock()
				if p.link != nil {
					p.link.binary.Store(true)
				}
				p.pmu.Unlock()
			}
			if first {
				p.markReady(true, patterns)
			}
		}
		reply <- m
	}, true) {
		return errLost
	}
	msg := helloMsg{Type: "hello", ID: id, Protocol: ProtocolVersion, SDK: "go/" + Version, Methods: methods, Subscriptions: patterns}
	if p.frames == FramesMsgpack {
		// The hub may send binary frames right behind its answer: the read loop takes them from now on.
		msg.Encodings = []string{FramesMsgpack, "json"}
	}
	if err := p.send(msg); err != nil {
		p.removePending(id)
		return fmt.Errorf("%w: sending hello: %v", errLost, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case m := <-reply:
		if m.lost {
			return errLost
		}
		if m.Success {
			return nil
		}
		if m.Error != nil {
			return m.Error
		}
		return Errorf(CodeProtocol, "the hub refused hello without an error")
	case <-timer.C:
		p.removePending(id)
		return Errorf(CodeTimeout, "no answer to hello within %v", timeout)
	case <-ctx.Done():
		p.removePending(id)
		return ctx.Err()
	}
}

func (p *Plugin) readLoop(l *link) {
	var err error
	defer func() {
		p.lost(l, err)
		p.readers.Done()
	}()
	for {
		var kind int
		var b []byte
		kind, b, err = l.conn.ReadMessage()
		if err != nil {
			return
		}
		max := p.maxBytes()
		if kind != websocket.TextMessage {
			if p.frames != FramesMsgpack {
				p.logger.Printf("ignored a binary frame from the hub (%d bytes)", len(b))
				continue
			}
			if len(b) > max {
				p.refuse(&refusal{CodeMessageTooLarge, fmt.Sprintf("a binary frame of %d bytes exceeds the maximum message size of %d bytes", len(b), max), nil}, l.gen)
				continue
			}
			j, terr := msgpackToJSON(b)
			if terr != nil {
				p.refuse(&refusal{CodeProtocol, fmt.Sprintf("a binary frame that is not a message: %v", terr), nil}, l.gen)
				continue
			}
			// Its size was the binary frame's; the JSON it became may be longer.
			b, max = j, math.MaxInt
		}
		m, refused := decode(b, max)
		if refused != nil {
			p.refuse(refused, l.gen)
			continue
		}
		p.dispatch(m, l.gen)
	}
}

// lost handles the end of connection l: calls waiting for an answer fail, and either the
// SDK reconnects (an established connection, not shutting down) or no connection will
// come any more.
func (p *Plugin) lost(l *link, err error) {
	draining := p.isDraining()
	p.pmu.Lock()
	l.err = err
	var waiting map[string]func(*inbound)
	var failure *inbound
	if p.link == l {
		p.link = nil
		waiting = p.pending
		p.pending = map[string]func(*inbound){}
		switch {
		case p.back != nil:
			// A reconnect attempt's connection: the loop tries again.
			failure = &inbound{Type: "response", lost: true, Error: Errorf(CodePluginUnavailable, "hub connection lost")}
		case p.established && !draining && !p.dead && p.reconnect > 0:
			p.back = make(chan struct{})
			p.online.Store(false)
			failure = &inbound{Type: "response", lost: true, Error: Errorf(CodePluginUnavailable, "hub connection lost")}
		default:
			p.dead = true
			p.online.Store(false)
			failure = &inbound{Type: "response", lost: true, Error: Errorf(CodeControllerUnavailable, "the connection to the hub closed before the answer came")}
		}
	}
	p.pmu.Unlock()
	close(l.gone)
	for _, fn := range waiting {
		fn(failure)
	}
}

// reconnectLoop connects again after the connection lost was lost: with backoff, for up to
// the reconnect window, saying hello with the same methods and every pattern. It
// returns the new connection; nil, nil when stopped meanwhile; an error when the window
// passes (LM_CONTROLLER_UNAVAILABLE) or the hub refuses hello.
func (p *Plugin) reconnectLoop(ctx context.Context, methods []string, lost *link) (*link, error) {
	lostAt := time.Now()
	deadline := lostAt.Add(p.reconnect)
	// Calls made from now on wait for the connection (lost set this up, unless the
	// connection went while its hello was being answered).
	p.pmu.Lock()
	if p.back == nil {
		p.back = make(chan struct{})
	}
	p.pmu.Unlock()
	p.online.Store(false)
	p.logger.Printf("plugin %s: hub connection lost (%s); reconnecting for up to %d ms", p.id, closeText(lost.err), p.reconnect.Milliseconds())
	delay := reconnectFirstDelay
	attempts, last := 0, "no attempt"
	for {
		wait := time.Until(deadline)
		if wait > delay {
			wait = delay
		}
		if wait < 0 {
			wait = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, nil
		case <-timer.C:
		}
		if delay *= 2; delay > reconnectMaxDelay {
			delay = reconnectMaxDelay
		}
		attempts++
		conn, err := p.dialOnce(ctx, maxDuration(time.Second, time.Until(deadline)))
		if err == nil {
			l := p.attach(conn)
			var sent []string
			sent, err = p.hello(ctx, methods, minDuration(p.connectTimeout, maxDuration(time.Second, time.Until(deadline))), false)
			if err == nil {
				p.pmu.Lock()
				back := p.back
				p.back = nil
				p.pmu.Unlock()
				p.markReady(false, sent)
				if back != nil {
					close(back) // calls waiting for the connection go on
				}
				p.logger.Printf("plugin %s: reconnected to the hub after %d ms", p.id, time.Since(lostAt).Milliseconds())
				return l, nil
			}
			p.close(l, websocket.CloseNormalClosure, "")
			if ctx.Err() != nil {
				return nil, nil
			}
			if !errors.Is(err, errLost) && CodeOf(err) != CodeTimeout {
				return nil, err // the hub refused hello
			}
		} else if ctx.Err() != nil {
			return nil, nil
		}
		last = err.Error()
		if !time.Now().Before(deadline) {
			return nil, &Error{
				Code:    CodeControllerUnavailable,
				Message: fmt.Sprintf("the hub connection was lost and not re-made within %d ms (%d attempt(s) at %s; last: %s)", p.reconnect.Milliseconds(), attempts, p.endpoint(), last),
				Details: map[string]any{"socket": p.endpoint(), "reconnectMs": p.reconnect.Milliseconds()},
			}
		}
	}
}

// closeText describes why a connection ended: "code 1006", with the reason if any.
func closeText(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if ce.Code != websocket.CloseAbnormalClosure && ce.Text != "" {
			return fmt.Sprintf("code %d: %s", ce.Code, ce.Text)
		}
		return fmt.Sprintf("code %d", ce.Code)
	}
	return fmt.Sprintf("code %d", websocket.CloseAbnormalClosure)
}

// send encodes a message and writes it on the current connection.
func (p *Plugin) send(v any) error {
	b, err := encode(v, p.maxBytes())
	if err != nil {
		return err
	}
	return p.write(b)
}

// maxBytes is the largest message either way: the hub's, once it announced it in the
// answer to hello, else the largest an operator may configure.
func (p *Plugin) maxBytes() int {
	if n := p.limit.Load(); n > 0 {
		return int(n)
	}
	return MaxMessageBytes
}

var (
	errNotConnected = errors.New("not connected to the hub")
	// errStale: an answer for a connection since lost; dropped.
	errStale = errors.New("the connection the request came in on is gone")
)

// write sends b on the current connection.
func (p *Plugin) write(b []byte) error { return p.writeOn(0, b) }

// writeOn sends b on connection gen (0: the current one).
func (p *Plugin) writeOn(gen uint64, b []byte) error {
	p.pmu.Lock()
	l := p.link
	p.pmu.Unlock()
	if l == nil {
		if gen != 0 {
			return errStale
		}
		return errNotConnected
	}
	if gen != 0 && l.gen != gen {
		return errStale
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = l.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if l.binary.Load() {
		// A message msgpack cannot carry exactly (an integer past 2^53) goes as text: the hub takes both.
		if mp, err := jsonToMsgpack(b); err == nil {
			return l.conn.WriteMessage(websocket.BinaryMessage, mp)
		}
	}
	return l.conn.WriteMessage(websocket.TextMessage, b)
}
