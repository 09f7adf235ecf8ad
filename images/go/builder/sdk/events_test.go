// Events, broadcasts and subscriptions through the fake hub.

package logomesh_test

import (
	"context"
	"testing"
	"time"

	"logomesh.local/logomesh"
	"logomesh.local/logomesh/logomeshtest"
)

func TestEmitAndBroadcast(t *testing.T) {
	s := start(t, nil)
	ctx := context.Background()
	if err := s.Plugin.Emit(ctx, "thought.added", msg{"text": "hi"}); err != nil {
		t.Fatal(err)
	}
	m := s.Conn.Expect("event")
	if m["topic"] != "thought.added" || asJSON(t, m["data"]) != `{"text":"hi"}` || m["id"] == "" || m["to"] != nil {
		t.Fatalf("event = %v", m)
	}
	if err := s.Plugin.EmitTo(ctx, []string{"indexer"}, "thought.added", 1); err != nil {
		t.Fatal(err)
	}
	if m := s.Conn.Expect("event"); asJSON(t, m["to"]) != `["indexer"]` || m["data"] != float64(1) {
		t.Fatalf("event = %v", m)
	}
	if err := s.Plugin.Broadcast(ctx, "cache.flush", nil); err != nil {
		t.Fatal(err)
	}
	if m := s.Conn.Expect("broadcast"); m["topic"] != "cache.flush" || m["data"] != nil {
		t.Fatalf("broadcast = %v", m)
	}
	if err := s.Plugin.Broadcast(ctx, "", "all"); err != nil {
		t.Fatal(err)
	}
	if m := s.Conn.Expect("broadcast"); m["data"] != "all" {
		t.Fatalf("broadcast = %v", m)
	} else if _, has := m["topic"]; has {
		t.Fatalf("a broadcast without topic carries one: %v", m)
	}
	if err := s.Plugin.Emit(ctx, "", nil); logomesh.CodeOf(err) != logomesh.CodeInvalidArgument {
		t.Fatalf("Emit without topic = %v", err)
	}
	// The hub refusing an event is logged, not fatal.
	s.Conn.Send(msg{"type": "error", "id": "e9", "correlationId": "1234", "error": msg{"code": "LM_PERMISSION_DENIED", "message": "messaging is off"}})
	if e := callError(t, s.Conn, "missing", nil); e["code"] != logomesh.CodeMethodNotFound {
		t.Fatalf("after a hub error: %v", e)
	}
}

func TestAcknowledgedEventsAndBroadcasts(t *testing.T) {
	s := start(t, nil)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- s.Plugin.EmitAcked(ctx, "thought.added", 1) }()
	m := s.Conn.Expect("event")
	if m["ack"] != true || m["topic"] != "thought.added" {
		t.Fatalf("acknowledged event = %v", m)
	}
	s.Conn.Answer(m, msg{"topic": "thought.added"})
	if err := <-done; err != nil {
		t.Fatalf("EmitAcked, published: %v", err)
	}
	// A refusal, as the hub sends it (an error naming the manifest field), is returned.
	go func() { done <- s.Plugin.BroadcastAcked(ctx, "secret.x", nil) }()
	m = s.Conn.Expect("broadcast")
	if m["ack"] != true {
		t.Fatalf("acknowledged broadcast = %v", m)
	}
	s.Conn.Send(msg{"type": "error", "id": "e1", "correlationId": m["id"], "error": msg{"code": "LM_PERMISSION_DENIED", "message": "coordination.publishes does not list 'secret.x'"}})
	if err := <-done; logomesh.CodeOf(err) != logomesh.CodePermissionDenied {
		t.Fatalf("BroadcastAcked, refused: %v", err)
	}
	// Without ack, nothing is asked for.
	if err := s.Plugin.Emit(ctx, "thought.added", 2); err != nil {
		t.Fatal(err)
	}
	if m := s.Conn.Expect("event"); m["ack"] != nil {
		t.Fatalf("event without ack = %v", m)
	}
}

func TestOnDispatchesMatchingTopics(t *testing.T) {
	type got struct{ handler, kind, topic, from, data string }
	seen := make(chan got, 32)
	record := func(name string) logomesh.EventHandler {
		return func(ctx context.Context, ev logomesh.Event) {
			seen <- got{name, ev.Kind, ev.Topic, ev.From, string(ev.Data)}
		}
	}
	s := connect(t, func(p *logomesh.Plugin) {
		p.On("thought.*", record("prefix"))
		p.On("cache.flush", record("exact"))
		p.On("*", record("all"))
	})
	// Every pattern registered before Run is in hello, in order: no subscribe follows.
	hello := s.Conn.Handshake()
	if got := asJSON(t, hello["subscriptions"]); got != `["thought.*","cache.flush","*"]` {
		t.Fatalf("hello subscriptions = %s", got)
	}
	send := func(kind, topic string, data any) {
		m := msg{"type": kind, "id": "ev", "from": "writer", "timestamp": 1, "data": data}
		if topic != "" {
			m["topic"] = topic
		}
		s.Conn.Send(m)
	}
	send("event", "thought.added", msg{"text": "hi"})
	send("broadcast", "cache.flush", nil)
	send("broadcast", "", 5)
	send("event", "thoughts", "no prefix match")
	want := []got{
		{"prefix", "event", "thought.added", "writer", `{"text":"hi"}`},
		{"all", "event", "thought.added", "writer", `{"text":"hi"}`},
		{"exact", "broadcast", "cache.flush", "writer", `null`},
		{"all", "broadcast", "cache.flush", "writer", `null`},
		{"all", "broadcast", "", "writer", `5`},
		{"all", "event", "thoughts", "writer", `"no prefix match"`},
	}
	for i, w := range want {
		select {
		case g := <-seen:
			if g != w {
				t.Fatalf("delivery %d = %+v, want %+v", i, g, w)
			}
		case <-time.After(logomeshtest.Wait):
			t.Fatalf("delivery %d (%+v) did not happen", i, w)
		}
	}

	// After Run: On subscribes at once, a second handler of the same topic does not
	// subscribe again, and Off unsubscribes.
	s.Plugin.On("late.topic", record("late"))
	if sub := s.Conn.Expect("subscribe"); sub["topic"] != "late.topic" {
		t.Fatalf("subscribe = %v", sub)
	}
	s.Plugin.On("late.topic", record("late2"))
	s.Plugin.Off("late.topic")
	if m := s.Conn.Expect("unsubscribe"); m["topic"] != "late.topic" {
		t.Fatalf("unsubscribe = %v", m)
	}
	send("event", "late.topic", 1)
	if g := <-seen; g.handler != "all" {
		t.Fatalf("handler removed by Off still called: %+v", g)
	}
}

func TestEventHandlerPanicIsContained(t *testing.T) {
	seen := make(chan string, 2)
	s := connect(t, func(p *logomesh.Plugin) {
		p.On("x", func(ctx context.Context, ev logomesh.Event) {
			if string(ev.Data) == `"bad"` {
				panic("bad event")
			}
			seen <- string(ev.Data)
		})
	})
	s.Conn.Handshake()
	s.Conn.Send(msg{"type": "event", "id": "1", "topic": "x", "data": "bad"})
	s.Conn.Send(msg{"type": "event", "id": "2", "topic": "x", "data": "good"})
	if got := <-seen; got != `"good"` {
		t.Fatalf("event = %s", got)
	}
}
