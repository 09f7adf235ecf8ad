package logomesh

import (
	"context"
	"encoding/json"
	"runtime/debug"
	"strings"
	"time"
)

// Event is an event or broadcast delivered to an On handler.
type Event struct {
	Kind      string          // "event" or "broadcast"
	Topic     string          // "" for a broadcast without a topic
	From      string          // the sender, set by the hub (so it is who really sent it): a plugin id, or "host"
	Data      json.RawMessage // "null" when the sender sent none
	Timestamp time.Time       // when the hub received it
}

// Decode decodes the event's data into v, as json.Unmarshal does.
func (e Event) Decode(v any) error { return json.Unmarshal(e.Data, v) }

// EventHandler handles events and broadcasts of the topics it was registered for.
// Handlers run one at a time, in the order the hub delivered, on one goroutine of their
// own (never blocking requests); start a goroutine for slow work.
type EventHandler func(ctx context.Context, ev Event)

type subscription struct {
	pattern string
	fn      EventHandler
}

// On calls fn for every event and broadcast whose topic matches pattern: an exact topic
// ("thought.added"), a prefix ("thought.*": every topic under thought.), or "*" (all, and
// broadcasts without a topic). It subscribes at the hub: before Run, as soon as hello
// succeeded; after, at once (while reconnecting: once connected again, when every pattern
// is subscribed again). Any plugin may subscribe.
func (p *Plugin) On(pattern string, fn EventHandler) {
	if pattern == "" || fn == nil {
		panic("logomesh: On needs a topic pattern and a handler")
	}
	p.mu.Lock()
	p.subs = append(p.subs, subscription{pattern, fn})
	send := p.online.Load() && !p.topics[pattern]
	if send {
		p.topics[pattern] = true
	}
	p.mu.Unlock()
	if send {
		p.subscribe(pattern)
	}
}

// Off removes every handler of pattern and unsubscribes from it at the hub.
func (p *Plugin) Off(pattern string) {
	p.mu.Lock()
	kept := p.subs[:0]
	for _, s := range p.subs {
		if s.pattern != pattern {
			kept = append(kept, s)
		}
	}
	for i := len(kept); i < len(p.subs); i++ {
		p.subs[i] = subscription{}
	}
	p.subs = kept
	send := p.online.Load() && p.topics[pattern]
	delete(p.topics, pattern)
	p.mu.Unlock()
	if send {
		p.sendTopic("unsubscribe", pattern)
	}
}

// DroppedEvents is how many events were dropped because handlers fell behind.
func (p *Plugin) DroppedEvents() uint64 { return p.dropped.Load() }

// markReady marks the connection ready (first: the first one) and subscribes to the
// patterns registered so far, all of them again on a new connection; under one lock, so
// that a concurrent On either is among them or subscribes itself.
func (p *Plugin) markReady(first bool) {
	p.mu.Lock()
	p.topics = map[string]bool{}
	var patterns []string
	for _, s := range p.subs {
		if !p.topics[s.pattern] {
			p.topics[s.pattern] = true
			patterns = append(patterns, s.pattern)
		}
	}
	p.online.Store(true)
	if first {
		close(p.ready)
	}
	p.mu.Unlock()
	for _, pattern := range patterns {
		p.subscribe(pattern)
	}
}

func (p *Plugin) subscribe(pattern string) {
	id := p.newID()
	ok := p.addPending(id, func(m *inbound) {
		if m.Success {
			return
		}
		p.mu.Lock()
		delete(p.topics, pattern)
		p.mu.Unlock()
		if m.Error != nil && !m.lost {
			p.logger.Printf("subscribing to %q failed: %s", pattern, m.Error)
		}
	})
	if !ok {
		return
	}
	if err := p.send(topicMsg{Type: "subscribe", ID: id, Topic: pattern}); err != nil {
		p.removePending(id)
		p.logger.Printf("subscribing to %q: %v", pattern, err)
	}
}

func (p *Plugin) sendTopic(kind, pattern string) {
	id := p.newID()
	p.addPending(id, func(m *inbound) {
		if !m.Success && m.Error != nil && !m.lost {
			p.logger.Printf("%s %q failed: %s", kind, pattern, m.Error)
		}
	})
	if err := p.send(topicMsg{Type: kind, ID: id, Topic: pattern}); err != nil {
		p.removePending(id)
		p.logger.Printf("%s %q: %v", kind, pattern, err)
	}
}

// matches reports whether a subscription pattern covers a topic.
func matches(pattern, topic string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, ".*"):
		return strings.HasPrefix(topic, pattern[:len(pattern)-1])
	default:
		return pattern == topic
	}
}

func (p *Plugin) dispatchEvents() {
	var fns []EventHandler
	for ev := range p.events {
		fns = fns[:0]
		p.mu.Lock()
		for _, s := range p.subs {
			if matches(s.pattern, ev.Topic) {
				fns = append(fns, s.fn)
			}
		}
		p.mu.Unlock()
		for _, fn := range fns {
			p.runEventHandler(fn, ev)
		}
	}
}

func (p *Plugin) runEventHandler(fn EventHandler, ev Event) {
	defer func() {
		if r := recover(); r != nil {
			p.logger.Printf("handler of %s %q panicked: %v\n%s", ev.Kind, ev.Topic, r, debug.Stack())
		}
	}()
	fn(p.baseCtx, ev)
}
