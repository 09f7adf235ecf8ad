package logomesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// HandlerFunc serves one method. args is the request's data as raw JSON ("null" when the
// request has none); the result is encoded with encoding/json. Return an *Error to answer
// with a code of your own; any other error becomes LM_PLUGIN_ERROR. Each request runs in
// its own goroutine, so a slow handler never holds up another request. ctx is cancelled
// when the request's timeout passes or when shutdown's grace period is over.
type HandlerFunc func(ctx context.Context, args json.RawMessage) (any, error)

// Option configures a Plugin. The defaults come from the environment LogoMesh sets.
type Option func(*Plugin)

// WithSocket sets the hub's socket path (default: $LOGOMESH_HUB_SOCKET).
func WithSocket(path string) Option { return func(p *Plugin) { p.socket = path } }

// WithPluginID sets the plugin id used in messages and logs (default: $LOGOMESH_PLUGIN_ID).
func WithPluginID(id string) Option { return func(p *Plugin) { p.id = id } }

// WithLogger sets where the SDK writes its own diagnostics (default: stderr, prefix "logomesh: ").
func WithLogger(l *log.Logger) Option { return func(p *Plugin) { p.logger = l } }

// WithShutdownGrace sets how long requests in flight may run after SIGTERM, SIGINT or the
// cancellation of RunContext's context (default 5s). The hub's shutdown message brings its own.
func WithShutdownGrace(d time.Duration) Option { return func(p *Plugin) { p.grace = d } }

// WithConnectTimeout bounds how long Run retries connecting to a socket that is not there
// yet, and waits for the answer to hello (default 10s).
func WithConnectTimeout(d time.Duration) Option { return func(p *Plugin) { p.connectTimeout = d } }

// WithReconnect sets how long Run tries to connect again after an established connection
// to the hub is lost (default: $LOGOMESH_RECONNECT_MS milliseconds, else 60s). 0 turns
// reconnecting off: a lost connection ends Run with LM_CONTROLLER_UNAVAILABLE.
func WithReconnect(d time.Duration) Option {
	return func(p *Plugin) {
		if d < 0 {
			d = 0
		}
		p.reconnect, p.reconnectSet = d, true
	}
}

const (
	// DefaultReconnect is how long Run tries to reconnect when LOGOMESH_RECONNECT_MS is not set.
	DefaultReconnect = 60 * time.Second
	// The backoff between reconnect attempts: 100 ms, doubled after each failure, at most 2 s.
	reconnectFirstDelay = 100 * time.Millisecond
	reconnectMaxDelay   = 2 * time.Second

	writeTimeout = 10 * time.Second
	closeTimeout = time.Second
	// eventQueue is how many events may wait for their handlers; more are dropped, as the
	// hub itself drops rather than stall.
	eventQueue = 1024
)

var methodName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Plugin is a connection to the LogoMesh hub: the methods it serves, the topics it
// listens to, and the calls and events it sends. Create it with New, register methods
// with Handle, then call Run.
type Plugin struct {
	id             string
	socket         string
	logger         *log.Logger
	grace          time.Duration
	connectTimeout time.Duration
	reconnect      time.Duration
	reconnectSet   bool

	// Lock order: mu before pmu; neither is held while calling out.
	mu       sync.Mutex
	handlers map[string]HandlerFunc
	subs     []subscription
	topics   map[string]bool // patterns subscribed on the open connection
	started  bool
	draining bool
	inflight int
	idle     chan struct{} // closed once draining and no request is in flight
	online   atomic.Bool   // connected and hello accepted (false while reconnecting)

	wmu sync.Mutex
	seq atomic.Uint64

	pmu     sync.Mutex
	pending map[string]func(*inbound)
	link    *link         // the current connection, nil between connections
	gen     uint64        // counts connections
	back    chan struct{} // while reconnecting: closed once connected again (or Run ends)
	dead    bool          // no connection will come any more
	// established: the hub has accepted a hello (set by the read loop as the answer
	// arrives, so that a loss right after it is seen as the loss of an established link).
	established bool

	ready      chan struct{} // closed once the first hello succeeded
	gone       chan struct{} // closed once Run is over
	finishOnce sync.Once
	readers    sync.WaitGroup

	events      chan Event
	dropped     atomic.Uint64
	shutdownReq chan time.Duration
	baseCtx     context.Context
	cancelBase  context.CancelFunc
}

// New returns a Plugin configured from LOGOMESH_PLUGIN_ID and LOGOMESH_HUB_SOCKET.
func New(opts ...Option) *Plugin {
	p := &Plugin{
		id:             os.Getenv("LOGOMESH_PLUGIN_ID"),
		socket:         os.Getenv("LOGOMESH_HUB_SOCKET"),
		logger:         log.New(os.Stderr, "logomesh: ", log.Lmsgprefix),
		grace:          5 * time.Second,
		connectTimeout: 10 * time.Second,
		handlers:       map[string]HandlerFunc{},
		topics:         map[string]bool{},
		pending:        map[string]func(*inbound){},
		ready:          make(chan struct{}),
		gone:           make(chan struct{}),
		events:         make(chan Event, eventQueue),
		shutdownReq:    make(chan time.Duration, 1),
	}
	for _, o := range opts {
		o(p)
	}
	if !p.reconnectSet {
		p.reconnect = reconnectFromEnv(p.logger)
	}
	p.baseCtx, p.cancelBase = context.WithCancel(context.Background())
	return p
}

// reconnectFromEnv reads LOGOMESH_RECONNECT_MS (milliseconds, 0 = never).
func reconnectFromEnv(logger *log.Logger) time.Duration {
	raw := strings.TrimSpace(os.Getenv("LOGOMESH_RECONNECT_MS"))
	if raw == "" {
		return DefaultReconnect
	}
	ms, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || ms < 0 {
		logger.Printf("LOGOMESH_RECONNECT_MS=%q is not a number of milliseconds >= 0; using %d", raw, DefaultReconnect.Milliseconds())
		return DefaultReconnect
	}
	return time.Duration(ms) * time.Millisecond
}

// link is one connection to the hub and its read loop.
type link struct {
	conn *websocket.Conn
	gen  uint64
	gone chan struct{} // closed once the read loop has ended
	err  error         // why it ended; set before gone is closed
}

// ID is the plugin's id.
func (p *Plugin) ID() string { return p.id }

// Handle registers the handler of a method. Register every method before Run: the list is
// announced in hello, and the manifest must list each one under coordination.exposesMethods.
// It panics on an invalid or duplicate name, a nil handler, or a call after Run.
func (p *Plugin) Handle(method string, fn HandlerFunc) {
	if !methodName.MatchString(method) {
		panic(fmt.Sprintf("logomesh: Handle(%q): a method name is a letter or _, then letters, digits or _, at most 64 characters", method))
	}
	if fn == nil {
		panic(fmt.Sprintf("logomesh: Handle(%q): nil handler", method))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		panic(fmt.Sprintf("logomesh: Handle(%q) after Run: methods are announced in hello, register them before Run", method))
	}
	if _, dup := p.handlers[method]; dup {
		panic(fmt.Sprintf("logomesh: Handle(%q): method registered twice", method))
	}
	p.handlers[method] = fn
}

// HandleMap registers every method of a map, as Handle does for each.
func (p *Plugin) HandleMap(methods map[string]HandlerFunc) {
	for name, fn := range methods {
		p.Handle(name, fn)
	}
}

// Run connects to the hub, says hello and serves until the hub sends shutdown or the
// process receives SIGTERM or SIGINT. Then it stops taking requests, lets those in flight
// answer (within the grace period), closes the connection with status 1000 and returns
// nil; return from main to exit 0. When an established connection is lost, it connects
// again (see WithReconnect), says hello again and subscribes again. It returns an error
// when the plugin cannot connect, the hub refuses hello, or the connection is lost and not
// re-made within the reconnect window.
func (p *Plugin) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return p.RunContext(ctx)
}

// RunContext is Run without signal handling: cancelling ctx shuts down like SIGTERM.
func (p *Plugin) RunContext(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return fmt.Errorf("logomesh: Run called twice")
	}
	p.started = true
	methods := make([]string, 0, len(p.handlers))
	for name := range p.handlers {
		methods = append(methods, name)
	}
	p.mu.Unlock()
	sort.Strings(methods)
	defer p.finish()
	defer p.cancelBase()
	tuneRuntime()

	if p.socket == "" {
		return Errorf(CodeControllerUnavailable, "LOGOMESH_HUB_SOCKET is not set: a plugin is started by LogoMesh, which sets it (or pass logomesh.WithSocket)")
	}
	conn, err := p.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // told to stop before the hub answered
		}
		return err
	}
	l := p.attach(conn)

	if err := p.hello(ctx, methods, p.connectTimeout); err != nil {
		p.close(l, websocket.CloseNormalClosure, "")
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errLost) {
			return Errorf(CodeControllerUnavailable, "the connection to the hub closed before the answer to hello came: %v", l.err)
		}
		return err
	}
	p.markReady(true)
	go p.dispatchEvents()

	var grace time.Duration
serving:
	for {
		select {
		case <-ctx.Done():
			grace = p.grace
			break serving
		case grace = <-p.shutdownReq:
			break serving
		case <-l.gone:
			if p.isDraining() {
				// The shutdown message came just before the connection went.
				select {
				case grace = <-p.shutdownReq:
				default:
					grace = p.grace
				}
				break serving
			}
			if p.reconnect <= 0 {
				return Errorf(CodeControllerUnavailable, "the connection to the hub closed: %v", l.err)
			}
			next, err := p.reconnectLoop(ctx, methods, l)
			if err != nil {
				return err
			}
			if next == nil {
				return nil // stopped while reconnecting
			}
			l = next
		}
	}
	p.drain(grace, l)
	p.close(l, websocket.CloseNormalClosure, "shutdown")
	return nil
}

// errLost is what hello returns when the connection closed before the hub answered.
var errLost = errors.New("the connection to the hub was lost")

// reconnectLoop connects again after the connection lost was lost: with backoff, for up to
// the reconnect window, saying hello with the same methods and subscribing again. It
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
			err = p.hello(ctx, methods, minDuration(p.connectTimeout, maxDuration(time.Second, time.Until(deadline))))
			if err == nil {
				p.pmu.Lock()
				back := p.back
				p.back = nil
				p.pmu.Unlock()
				p.markReady(false)
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
				Message: fmt.Sprintf("the hub connection was lost and not re-made within %d ms (%d attempt(s) at %s; last: %s)", p.reconnect.Milliseconds(), attempts, p.socket, last),
				Details: map[string]any{"socket": p.socket, "reconnectMs": p.reconnect.Milliseconds()},
			}
		}
	}
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func maxDuration(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
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

func (p *Plugin) isDraining() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.draining
}

// attach makes conn the current connection and starts reading it.
func (p *Plugin) attach(conn *websocket.Conn) *link {
	p.pmu.Lock()
	p.gen++
	l := &link{conn: conn, gen: p.gen, gone: make(chan struct{})}
	p.link = l
	p.pmu.Unlock()
	p.readers.Add(1)
	go p.readLoop(l)
	return l
}

func (p *Plugin) hello(ctx context.Context, methods []string, timeout time.Duration) error {
	id := p.newID()
	reply := make(chan *inbound, 1)
	if !p.addWaiter(id, func(m *inbound) {
		if m.Success && !m.lost {
			p.pmu.Lock()
			p.established = true
			p.pmu.Unlock()
		}
		reply <- m
	}, true) {
		return errLost
	}
	msg := helloMsg{Type: "hello", ID: id, Protocol: ProtocolVersion, SDK: "go/" + Version, Methods: methods}
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
		if kind != websocket.TextMessage {
			p.logger.Printf("ignored a binary frame from the hub (%d bytes)", len(b))
			continue
		}
		m := new(inbound)
		if jerr := json.Unmarshal(b, m); jerr != nil {
			p.logger.Printf("ignored a frame from the hub that is not a JSON object: %v", jerr)
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
	ctx := p.baseCtx
	if m.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(m.Timeout)*time.Millisecond)
		defer cancel()
	}
	ctx = context.WithValue(ctx, requestKey{}, &Request{ID: m.ID, From: m.From, Method: m.Method, Timestamp: time.UnixMilli(m.Timestamp)})
	result, err := p.invoke(ctx, m.Method, h, orNull(m.Data))
	if err != nil {
		p.replyError(gen, m.ID, toError(err))
		return
	}
	b, err := json.Marshal(okMsg{Type: "response", ID: p.newID(), CorrelationID: m.ID, Success: true, Data: result})
	if err != nil {
		p.replyError(gen, m.ID, Errorf(CodePluginError, "the result of %s cannot be encoded as JSON: %v", m.Method, err))
		return
	}
	if err := p.writeOn(gen, b); err != nil && !errors.Is(err, errStale) {
		p.logger.Printf("could not send the response to %s: %v", m.Method, err)
	}
}

type okMsg struct {
	Type          string `json:"type"`
	ID            string `json:"id"`
	CorrelationID string `json:"correlationId"`
	Success       bool   `json:"success"`
	Data          any    `json:"data"`
}

func (p *Plugin) invoke(ctx context.Context, method string, h HandlerFunc, args json.RawMessage) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.logger.Printf("method %s panicked: %v\n%s", method, r, debug.Stack())
			err = &Error{Code: CodePluginError, Message: fmt.Sprintf("method %s panicked: %v", method, r), Details: map[string]any{"type": "panic"}}
		}
	}()
	return h(ctx, args)
}

func (p *Plugin) replyError(gen uint64, correlationID string, e *Error) {
	b, err := json.Marshal(responseMsg{Type: "response", ID: p.newID(), CorrelationID: correlationID, Success: false, Error: e})
	if err == nil {
		err = p.writeOn(gen, b)
	}
	if err != nil && !errors.Is(err, errStale) {
		p.logger.Printf("could not send an error response (%s): %v", e.Code, err)
	}
}

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

func (p *Plugin) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return p.write(b)
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
	return l.conn.WriteMessage(websocket.TextMessage, b)
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
