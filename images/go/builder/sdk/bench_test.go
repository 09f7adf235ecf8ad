package logomesh_test

import (
	"context"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"logomesh.local/logomesh"
	"logomesh.local/logomesh/logomeshtest"
)

// BenchmarkCallRoundTrip measures a Call from one plugin to another through a relaying
// fake hub (plugin -> hub -> plugin and back), which decodes and re-encodes every message
// as a real hub does. It reports the median and 99th percentile of one call.
//
//	go test -run '^$' -bench CallRoundTrip logomesh.local/logomesh
func BenchmarkCallRoundTrip(b *testing.B) {
	h := logomeshtest.NewHub(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	r := &relay{conns: map[string]*logomeshtest.Conn{}, open: map[string]relayed{}}
	connect := func(id string, setup func(p *logomesh.Plugin)) *logomesh.Plugin {
		p := logomesh.New(logomesh.WithSocket(h.Socket()), logomesh.WithPluginID(id))
		setup(p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.RunContext(ctx)
		}()
		c := h.Accept()
		c.Handshake()
		r.conns[id] = c
		return p
	}
	connect("callee", func(p *logomesh.Plugin) { p.Handle("echo", echo) })
	caller := connect("caller", func(*logomesh.Plugin) {})
	for id, c := range r.conns {
		go r.serve(id, c)
	}

	args := map[string]string{"text": "hello world"}
	times := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := caller.Call(ctx, "callee.echo", args, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		times[i] = time.Since(start)
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(times[len(times)*99/100].Nanoseconds())/1e3, "p99-us")
}

// relay routes requests by "to" and responses back by correlation id, like the hub.
type relay struct {
	mu    sync.Mutex
	conns map[string]*logomeshtest.Conn
	open  map[string]relayed
	seq   int
}

type relayed struct {
	caller string
	id     any
}

func (r *relay) serve(from string, c *logomeshtest.Conn) {
	for {
		var m msg
		select {
		case m = <-c.Messages():
		case <-c.Done():
			return
		}
		var to string
		r.mu.Lock()
		switch m["type"] {
		case "request":
			r.seq++
			id := strconv.Itoa(r.seq)
			r.open[id] = relayed{from, m["id"]}
			to = m["to"].([]any)[0].(string)
			m["id"], m["from"] = id, from
			delete(m, "to")
		case "response":
			back := r.open[m["correlationId"].(string)]
			delete(r.open, m["correlationId"].(string))
			to = back.caller
			m["correlationId"] = back.id
		}
		target := r.conns[to]
		r.mu.Unlock()
		if target == nil {
			continue
		}
		target.Send(m)
	}
}
