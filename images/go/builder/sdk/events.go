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
// broadcasts without a topic). A pattern registered before Run goes in hello's
// subscriptions: the hub subscribes it before the plugin counts as ready, so no event
// published once it is ready is missed (and so on every reconnect's hello). One registered
// after Run is subscribed at once, with a subscribe message written before On returns
// (while reconnecting: in the next hello). The manifest must cover each pattern under
// coordination.subscribes: the hub refuses a hello naming one it does not (Run returns that
// error), and a later subscribe is refused and logged, and the pattern's handlers are
// dropped (so no later hello names it).
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
	p.dropHandlers(pattern)
	send := p.online.Load() && p.topics[pattern]
	delete(p.topics, pattern)
	p.mu.Unlock()
	if send {
		p.sendTopic("unsubscribe", pattern)
	}
}

// dropHandlers removes every handler of pattern (p.mu held).
func (p *Plugin) dropHandlers(pattern string) {
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
}

// DroppedEvents is how many events were dropped because handlers fell behind.
func (p *Plugin) DroppedEvents() uint64 { return p.dropped.Load() }

// markReady marks the connection ready (first: the first one) once the hub accepted a
// hello that subscribed sent. A pattern registered since (while hello waited for its
// answer) is subscribed now, and one removed since is unsubscribed; under one lock, so that
// a concurrent On either is among them or subscribes itself.
func (p *Plugin) markReady(first bool, sent []string) {
	p.mu.Lock()
	p.topics = map[string]bool{}
	for _, pattern := range sent {
		p.topics[pattern] = true
	}
	var subscribe []string
	registered := map[string]bool{}
	for _, s := range p.subs {
		registered[s.pattern] = true
		if !p.topics[s.pattern] {
			p.topics[s.pattern] = true
			subscribe = append(subscribe, s.pattern)
		}
	}
	var unsubscribe []string
	for _, pattern := range sent {
		if !registered[pattern] {
			delete(p.topics, pattern)
			unsubscribe = append(unsubscribe, pattern)
		}
	}
	p.online.Store(true)
	if first {
		close(p.ready)
	}
	p.mu.Unlock()
	for _, pattern := range subscribe {
		p.subscribe(pattern)
	}
	for _, pattern := range unsubscribe {
		p.sendTopic("unsubscribe", pattern)
	}
}

func (p *Plugin) subscribe(pattern string) {
	id := p.newID()
	ok := p.addPending(id, func(m *inbound) {
		if m.Success {
			return
		}
		refused := m.Error != nil && !m.lost
		p.mu.Lock()
		delete(p.topics, pattern)
		if refused {
			// Its handlers go too, or the next reconnect's hello would name the pattern and
			// the hub would refuse the whole hello.
			p.dropHandlers(pattern)
		}
		p.mu.Unlock()
		if refused {
			p.logger.Printf("subscribing to %q refused, its handlers dropped: %s", pattern, m.Error)
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
