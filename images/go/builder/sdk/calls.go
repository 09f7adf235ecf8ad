// Outbound messages: calls to other plugins and the host, events and broadcasts.

package logomesh

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

const (
	// DefaultCallTimeout is the hub's timeout for a call that names none.
	DefaultCallTimeout = 30 * time.Second
	// MaxCallTimeout is the longest timeout the hub accepts; longer ones are lowered to it.
	MaxCallTimeout = 300 * time.Second
	// callMargin lets the hub's own LM_TIMEOUT answer arrive before the SDK gives up locally.
	callMargin = time.Second
	// ackTimeout bounds the wait for the hub's answer to an acknowledged event (as the
	// Node.js SDK's): the hub answers at once, so only a hub in trouble takes this long.
	ackTimeout = 10 * time.Second
)

// Call calls a method of another plugin ("plugin.method") or of the host application (a
// name without a dot) and returns its result as raw JSON. args is encoded with
// encoding/json (a json.RawMessage is sent as is). timeout <= 0 means the hub's default
// (30s); it is capped at 5 minutes. A failed call returns an *Error: the callee's own code,
// one of the hub's (LM_PERMISSION_DENIED, LM_PLUGIN_UNAVAILABLE, LM_TIMEOUT, ...) or
// LM_CONTROLLER_UNAVAILABLE. Cancelling ctx returns ctx.Err().
//
// Call may be used before Run has connected (from a goroutine): it waits for the
// connection, within the same timeout. If the hub connection is lost while the call waits
// for its answer, it fails at once with LM_PLUGIN_UNAVAILABLE ("hub connection lost"); a
// call made while the SDK reconnects waits for the connection within its timeout (then
// LM_PLUGIN_UNAVAILABLE), and the hub gets what is left of the timeout.
func (p *Plugin) Call(ctx context.Context, target string, args any, timeout time.Duration) (json.RawMessage, error) {
	return p.CallWith(ctx, target, args, timeout)
}

// CallWith is Call for arguments that carry shared-memory segments: each one goes in
// segments (seg.Ref(), or seg.Grant("read") to give the target access on the way), and the
// hub delivers the call only if the target may open every one.
func (p *Plugin) CallWith(ctx context.Context, target string, args any, timeout time.Duration, segments ...SegmentRef) (json.RawMessage, error) {
	to, method, err := splitTarget(target)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(args)
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "the arguments for %s cannot be encoded as JSON: %v", target, err)
	}
	var ms int64
	wait := DefaultCallTimeout
	if timeout > 0 {
		if timeout > MaxCallTimeout {
			timeout = MaxCallTimeout
		}
		ms = int64((timeout + time.Millisecond - 1) / time.Millisecond)
		wait = time.Duration(ms) * time.Millisecond
	}

	// One clock for the whole call, waiting for the connection included.
	started := time.Now()
	timer := time.NewTimer(wait + callMargin)
	defer timer.Stop()
	if err := p.waitReady(ctx, timer.C); err != nil {
		return nil, err
	}
	id := p.newID()
	reply := make(chan *inbound, 1)
	var expired *time.Timer // waiting for a reconnect: at most the call's own timeout
	for !p.addPending(id, func(m *inbound) { reply <- m }) {
		if p.reconnecting() == nil {
			return nil, Errorf(CodeControllerUnavailable, "plugin %s is not connected to the hub", p.id)
		}
		if expired == nil {
			expired = time.NewTimer(wait - time.Since(started))
			defer expired.Stop()
		}
		if err := p.awaitOnline(ctx, expired.C, "call "+target); err != nil {
			return nil, err
		}
	}
	if expired != nil {
		// The time spent waiting for the connection comes off the call's timeout.
		left := (wait - time.Since(started) + time.Millisecond - 1) / time.Millisecond
		if left < 1 {
			left = 1
		}
		ms = int64(left)
	}
	frame, err := p.outbound(requestMsg{Type: "request", ID: id, To: []string{to}, Method: method, Data: data, Timeout: ms, Segments: segments}, "the call to "+target)
	if err != nil {
		p.removePending(id)
		return nil, err
	}
	if err := p.write(frame); err != nil {
		p.removePending(id)
		if p.reconnecting() != nil {
			return nil, Errorf(CodePluginUnavailable, "hub connection lost")
		}
		return nil, Errorf(CodeControllerUnavailable, "sending the request for %s: %v", target, err)
	}
	select {
	case m := <-reply:
		if m.Success {
			return orNull(m.Data), nil
		}
		if m.Error == nil {
			return nil, Errorf(CodeProtocol, "the call to %s failed without an error", target)
		}
		return nil, m.Error
	case <-timer.C:
		p.removePending(id)
		return nil, &Error{
			Code:    CodeTimeout,
			Message: fmt.Sprintf("no response from %s within %v", target, wait),
			Details: map[string]any{"target": target, "timeoutMs": wait.Milliseconds()},
		}
	case <-ctx.Done():
		p.removePending(id)
		return nil, ctx.Err()
	}
}

// CallInto is Call that decodes the result into out (a pointer), as json.Unmarshal does.
func (p *Plugin) CallInto(ctx context.Context, target string, args any, timeout time.Duration, out any) error {
	raw, err := p.Call(ctx, target, args, timeout)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return Errorf(CodeInvalidArgument, "the result of %s does not decode into %T: %v", target, out, err)
	}
	return nil
}

// splitTarget turns "plugin.method" into ("plugin", "method") and "method" into ("host", "method").
func splitTarget(target string) (to, method string, err error) {
	to, method = "host", target
	if i := strings.IndexByte(target, '.'); i >= 0 {
		to, method = target[:i], target[i+1:]
	}
	if to == "" || !methodName.MatchString(method) {
		return "", "", Errorf(CodeInvalidArgument, "call target %q: expected \"plugin.method\" or the name of a host method", target)
	}
	return to, method, nil
}

// Emit sends an event on topic to every plugin subscribed to it. Events need
// coordination.messaging: true in the manifest; the hub refuses them otherwise, which is
// logged (an event has no answer to wait for). Before Run has connected, it waits for the
// connection, at most the connect timeout. While the SDK reconnects to the hub it fails
// with LM_PLUGIN_UNAVAILABLE: events are never queued.
func (p *Plugin) Emit(ctx context.Context, topic string, data any) error {
	return p.publish(ctx, "event", topic, data, nil, false)
}

// EmitAcked is Emit that asks the hub for its answer and waits for it: nil once the hub
// published the event, else the refusal as an *Error (LM_PERMISSION_DENIED naming the
// manifest field, LM_RATE_LIMITED), LM_PLUGIN_UNAVAILABLE if the connection was lost
// meanwhile, or LM_TIMEOUT after 10s without an answer.
func (p *Plugin) EmitAcked(ctx context.Context, topic string, data any) error {
	return p.publish(ctx, "event", topic, data, nil, true)
}

// EmitTo sends an event on topic to the named plugins only.
func (p *Plugin) EmitTo(ctx context.Context, to []string, topic string, data any) error {
	if len(to) == 0 {
		return Errorf(CodeInvalidArgument, "EmitTo %q: no recipient", topic)
	}
	return p.publish(ctx, "event", topic, data, to, false)
}

// Broadcast sends data to every other plugin and host client; with a topic, only to the
// subscribers of that topic ("" for none). Needs coordination.messaging: true, like Emit.
func (p *Plugin) Broadcast(ctx context.Context, topic string, data any) error {
	return p.publish(ctx, "broadcast", topic, data, nil, false)
}

// BroadcastAcked is Broadcast that waits for the hub's answer, as EmitAcked does.
func (p *Plugin) BroadcastAcked(ctx context.Context, topic string, data any) error {
	return p.publish(ctx, "broadcast", topic, data, nil, true)
}

func (p *Plugin) publish(ctx context.Context, kind, topic string, data any, to []string, ack bool) error {
	if kind == "event" && topic == "" {
		return Errorf(CodeInvalidArgument, "an event needs a topic")
	}
	b, err := json.Marshal(data)
	if err != nil {
		return Errorf(CodeInvalidArgument, "the data of %s %q cannot be encoded as JSON: %v", kind, topic, err)
	}
	if err := p.readyWithin(ctx, p.connectTimeout); err != nil {
		return err
	}
	if err := p.awaitOnline(ctx, nil, kind+" "+topic); err != nil {
		return err
	}
	id := p.newID()
	frame, err := p.outbound(eventMsg{Type: kind, ID: id, Topic: topic, Data: b, To: to, Ack: ack}, fmt.Sprintf("%s %q", kind, topic))
	if err != nil {
		return err
	}
	var reply chan *inbound
	if ack {
		// Waiting before writing: the answer may come back before write returns.
		reply = make(chan *inbound, 1)
		if !p.addPending(id, func(m *inbound) { reply <- m }) {
			return Errorf(CodePluginUnavailable, "%s %q: hub connection lost", kind, topic)
		}
	}
	if err := p.write(frame); err != nil {
		p.removePending(id)
		if p.reconnecting() != nil {
			return Errorf(CodePluginUnavailable, "%s %q: hub connection lost", kind, topic)
		}
		return Errorf(CodeControllerUnavailable, "sending %s %q: %v", kind, topic, err)
	}
	if !ack {
		return nil
	}
	timer := time.NewTimer(ackTimeout)
	defer timer.Stop()
	select {
	case m := <-reply:
		if m.Success {
			return nil
		}
		if m.Error == nil {
			return Errorf(CodeProtocol, "the hub refused %s %q without an error", kind, topic)
		}
		return m.Error
	case <-timer.C:
		p.removePending(id)
		return &Error{Code: CodeTimeout, Message: fmt.Sprintf("the hub did not answer %s %q within %v", kind, topic, ackTimeout), Details: map[string]any{"topic": topic}}
	case <-ctx.Done():
		p.removePending(id)
		return ctx.Err()
	}
}

// outbound encodes a message the plugin sends of its own accord: LM_INVALID_ARGUMENT when
// its data is nested too deep or is not JSON, LM_MESSAGE_TOO_LARGE when it is too large.
func (p *Plugin) outbound(v any, what string) ([]byte, error) {
	b, err := encode(v, p.maxBytes())
	if err == nil {
		return b, nil
	}
	code := CodeInvalidArgument
	if ee, ok := err.(*encodeError); ok && ee.tooLarge {
		code = CodeMessageTooLarge
	}
	return nil, Errorf(code, "the data of %s %v", what, err)
}
