// Inbound messages: every frame from the hub is decoded within the protocol's limits and
// routed to a waiting call, a method or the event handlers. Whatever a handler returns or
// panics with, its caller gets an answer with a code, and the plugin goes on.

package logomesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"time"
)

// messageCut: an error message in an answer is cut to this many bytes when the whole would
// not fit in a message.
const messageCut = 1024

// refuse handles a frame too large, too deep or not JSON: its request is answered with the
// code, the call waiting for it fails with it, anything else is dropped (and logged).
func (p *Plugin) refuse(r *refusal, gen uint64) {
	kind, id := r.fields["type"], r.fields["id"]
	switch {
	case kind == "request" && id != "" && len(id) <= IDMaxLength:
		p.logger.Printf("refused request %s from the hub: %s", id, r.message)
		p.replyError(gen, id, &Error{Code: r.code, Message: r.message})
	case (kind == "response" || kind == "error") && p.resolve(&inbound{Type: "response", CorrelationID: r.fields["correlationId"], Error: &Error{Code: r.code, Message: "the answer was refused: " + r.message}}):
	default:
		p.logger.Printf("dropped a frame from the hub (type %q, %s): %s", kind, r.code, r.message)
	}
}

func (p *Plugin) dispatch(m *inbound, gen uint64) {
	switch m.Type {
	case "response":
		p.resolve(m)
	case "error":
		if m.Error == nil {
			m.Error = &Error{Code: CodeProtocol, Message: "the hub reported an error without details"}
		}
		m.Success = false
		if !p.resolve(m) {
			p.logger.Printf("the hub reported %s: %s", m.Error.Code, m.Error.Message)
		}
	case "request":
		p.request(m, gen)
	case "event", "broadcast":
		ev := Event{Kind: m.Type, Topic: m.Topic, From: m.From, Data: orNull(m.Data), Timestamp: time.UnixMilli(m.Timestamp)}
		select {
		case p.events <- ev:
		default:
			if p.dropped.Add(1) == 1 {
				p.logger.Printf("event handlers fall behind: dropped %s %q (more drops are counted in DroppedEvents)", m.Type, m.Topic)
			}
		}
	case "shutdown":
		grace := p.grace
		var sd shutdownData
		if len(m.Data) > 0 && json.Unmarshal(m.Data, &sd) == nil && sd.GraceMs != nil && *sd.GraceMs >= 0 {
			grace = time.Duration(*sd.GraceMs) * time.Millisecond
		}
		// Drain here, in order: a request read after shutdown is refused.
		p.beginDrain()
		select {
		case p.shutdownReq <- grace:
		default:
		}
	}
}

func (p *Plugin) request(m *inbound, gen uint64) {
	p.mu.Lock()
	h, ok := p.handlers[m.Method]
	draining := p.draining
	if ok && !draining {
		p.inflight++
	}
	var served []string
	if !ok {
		served = make([]string, 0, len(p.handlers))
		for name := range p.handlers {
			served = append(served, name)
		}
		sort.Strings(served)
	}
	p.mu.Unlock()
	switch {
	case draining:
		p.replyError(gen, m.ID, Errorf(CodePluginUnavailable, "plugin %s is shutting down", p.id))
	case !ok:
		p.replyError(gen, m.ID, &Error{
			Code:    CodeMethodNotFound,
			Message: fmt.Sprintf("plugin %s has no method %q", p.id, m.Method),
			Details: map[string]any{"method": m.Method, "methods": served},
		})
	default:
		go p.serve(h, m, gen)
	}
}

type requestKey struct{}

// Request describes the request a handler is serving; see RequestOf.
type Request struct {
	ID        string
	From      string // the caller: a plugin id, or "host"
	Method    string
	Timestamp time.Time
}

// RequestOf returns the request a handler's context belongs to, or nil.
func RequestOf(ctx context.Context) *Request {
	r, _ := ctx.Value(requestKey{}).(*Request)
	return r
}

// serve runs a request that came in on connection gen; its answer goes out on that
// connection only (a request from a hub since lost cannot be answered).
func (p *Plugin) serve(h HandlerFunc, m *inbound, gen uint64) {
	defer p.requestDone()
	answered := false
	defer func() {
		// A handler that called runtime.Goexit never returns: its caller still gets an answer.
		if !answered {
			p.replyError(gen, m.ID, Errorf(CodePluginError, "method %s ended its goroutine without returning", m.Method))
		}
	}()
	ctx := p.baseCtx
	if m.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(m.Timeout)*time.Millisecond)
		defer cancel()
	}
	ctx = context.WithValue(ctx, requestKey{}, &Request{ID: m.ID, From: m.From, Method: m.Method, Timestamp: time.UnixMilli(m.Timestamp)})
	result, err := p.invoke(ctx, m.Method, h, orNull(m.Data))
	answered = true
	if err != nil {
		p.replyError(gen, m.ID, toError(err))
		return
	}
	b, err := encode(okMsg{Type: "response", ID: p.newID(), CorrelationID: m.ID, Success: true, Data: result}, p.maxBytes())
	if err != nil {
		code := CodePluginError
		if ee, ok := err.(*encodeError); ok && ee.tooLarge {
			code = CodeMessageTooLarge
		}
		p.replyError(gen, m.ID, &Error{Code: code, Message: fmt.Sprintf("the result of %s %v", m.Method, err)})
		return
	}
	if err := p.writeOn(gen, b); err != nil && !errors.Is(err, errStale) {
		p.logger.Printf("could not send the response to %s: %v", m.Method, err)
	}
}

// invoke runs a handler; a panic, panic(nil) included (recover sees nil then), becomes
// LM_PLUGIN_ERROR.
func (p *Plugin) invoke(ctx context.Context, method string, h HandlerFunc, args json.RawMessage) (result any, err error) {
	returned := false
	defer func() {
		if r := recover(); r != nil || !returned {
			why := fmt.Sprintf("panicked: %v", r)
			if r == nil {
				why = "did not return (panic(nil) or runtime.Goexit)"
			}
			p.logger.Printf("method %s %s\n%s", method, why, debug.Stack())
			result, err = nil, &Error{Code: CodePluginError, Message: fmt.Sprintf("method %s %s", method, why), Details: map[string]any{"type": "panic"}}
		}
	}()
	result, err = h(ctx, args)
	returned = true
	return result, err
}

// replyError answers a request with e. Details that cannot be sent are left out, and a
// message too long for the maximum message size is cut, so the caller always gets a code.
func (p *Plugin) replyError(gen uint64, correlationID string, e *Error) {
	msg := responseMsg{Type: "response", ID: p.newID(), CorrelationID: correlationID, Success: false, Error: e}
	b, err := encode(msg, p.maxBytes())
	if err != nil {
		msg.Error = &Error{Code: e.Code, Message: e.Message}
		b, err = encode(msg, p.maxBytes())
	}
	if err != nil {
		code, text := e.Code, e.Message
		if len(code) > 64 {
			code = CodePluginError
		}
		if len(text) > messageCut {
			text = text[:messageCut]
		}
		msg.Error = &Error{Code: code, Message: text}
		b, err = encode(msg, p.maxBytes())
	}
	if err == nil {
		err = p.writeOn(gen, b)
	}
	if err != nil && !errors.Is(err, errStale) {
		p.logger.Printf("could not send an error response (%s): %v", e.Code, err)
	}
}
