// Answers awaited (calls, hello, subscriptions) and waiting for the connection.

package logomesh

import (
	"context"
	"strconv"
	"time"
)

func (p *Plugin) newID() string {
	return strconv.FormatUint(p.seq.Add(1), 10)
}

// addPending registers a waiter for the answer to id; false when there is no connection
// (or only one whose hello is not answered yet).
func (p *Plugin) addPending(id string, fn func(*inbound)) bool { return p.addWaiter(id, fn, false) }

func (p *Plugin) addWaiter(id string, fn func(*inbound), hello bool) bool {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	if p.link == nil || p.dead || (p.back != nil && !hello) {
		return false
	}
	p.pending[id] = fn
	return true
}

func (p *Plugin) removePending(id string) {
	p.pmu.Lock()
	delete(p.pending, id)
	p.pmu.Unlock()
}

// resolve hands an answer to whoever waits for it; false if nobody does (a late answer).
func (p *Plugin) resolve(m *inbound) bool {
	p.pmu.Lock()
	fn, ok := p.pending[m.CorrelationID]
	delete(p.pending, m.CorrelationID)
	p.pmu.Unlock()
	if ok {
		fn(m)
	}
	return ok
}

// reconnecting is nil while connected; while reconnecting, a channel closed once connected
// again (or once Run is over).
func (p *Plugin) reconnecting() chan struct{} {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	return p.back
}

// awaitOnline waits, while the SDK reconnects, for the connection to be back: until
// expired fires (then LM_PLUGIN_UNAVAILABLE; a nil expired fails at once), ctx is done, or
// Run ends (LM_CONTROLLER_UNAVAILABLE).
func (p *Plugin) awaitOnline(ctx context.Context, expired <-chan time.Time, what string) error {
	for {
		select {
		case <-p.gone:
			return Errorf(CodeControllerUnavailable, "plugin %s is not connected to the hub", p.id)
		default:
		}
		back := p.reconnecting()
		if back == nil {
			return nil
		}
		if expired == nil {
			return Errorf(CodePluginUnavailable, "%s: hub connection lost; reconnecting", what)
		}
		select {
		case <-back:
		case <-p.gone:
		case <-ctx.Done():
			return ctx.Err()
		case <-expired:
			return Errorf(CodePluginUnavailable, "%s: hub connection lost, and not back within the call's timeout", what)
		}
	}
}

// readyWithin is waitReady bounded by d, without a timer when already connected.
func (p *Plugin) readyWithin(ctx context.Context, d time.Duration) error {
	select {
	case <-p.ready:
		return p.waitReady(ctx, nil)
	default:
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	return p.waitReady(ctx, timer.C)
}

// waitReady blocks until hello has succeeded, the connection is over, ctx is done, or
// expired fires.
func (p *Plugin) waitReady(ctx context.Context, expired <-chan time.Time) error {
	select {
	case <-p.ready:
	case <-p.gone:
	case <-ctx.Done():
		return ctx.Err()
	case <-expired:
		return Errorf(CodeControllerUnavailable, "plugin %s did not connect to the hub in time (is Run running?)", p.id)
	}
	select {
	case <-p.gone:
		return Errorf(CodeControllerUnavailable, "plugin %s is not connected to the hub", p.id)
	default:
		return nil
	}
}
