package logomesh

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
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

const (
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

	mu       sync.Mutex
	handlers map[string]HandlerFunc
	subs     []subscription
	topics   map[string]bool // patterns subscribed on the open connection
	started  bool
	draining bool
	inflight int
	idle     chan struct{} // closed once draining and no request is in flight

	conn *websocket.Conn
	wmu  sync.Mutex
	seq  atomic.Uint64

	pmu     sync.Mutex
	pending map[string]func(*inbound)
	closed  bool

	ready      chan struct{} // closed once hello succeeded
	gone       chan struct{} // closed once the connection is over (or never came)
	finishOnce sync.Once
	readErr    error

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
	p.baseCtx, p.cancelBase = context.WithCancel(context.Background())
	return p
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
// nil; return from main to exit 0. It returns an error when the plugin cannot connect,
// the hub refuses hello, or the connection is lost.
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
	defer p.finish(nil)
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
	p.conn = conn
	go p.readLoop()

	if err := p.hello(ctx, methods); err != nil {
		p.close(websocket.CloseNormalClosure, "")
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	p.markReady()
	go p.dispatchEvents()

	var grace time.Duration
	select {
	case <-ctx.Done():
		grace = p.grace
	case grace = <-p.shutdownReq:
	case <-p.gone:
		return Errorf(CodeControllerUnavailable, "the connection to the hub closed: %v", p.readErr)
	}
	p.drain(grace)
	p.close(websocket.CloseNormalClosure, "shutdown")
	return nil
}

func (p *Plugin) hello(ctx context.Context, methods []string) error {
	id := p.newID()
	reply := make(chan *inbound, 1)
	if !p.addPending(id, func(m *inbound) { reply <- m }) {
		return Errorf(CodeControllerUnavailable, "the connection to the hub closed before hello: %v", p.readErr)
	}
	msg := helloMsg{Type: "hello", ID: id, Protocol: ProtocolVersion, SDK: "go/" + Version, Methods: methods}
	if err := p.send(msg); err != nil {
		return Errorf(CodeControllerUnavailable, "sending hello: %v", err)
	}
	timer := time.NewTimer(p.connectTimeout)
	defer timer.Stop()
	select {
	case m := <-reply:
		if m.Success {
			return nil
		}
		if m.Error != nil {
			return m.Error
		}
		return Errorf(CodeProtocol, "the hub refused hello without an error")
	case <-timer.C:
		p.removePending(id)
		return Errorf(CodeTimeout, "no answer to hello within %v", p.connectTimeout)
	case <-ctx.Done():
		p.removePending(id)
		return ctx.Err()
	}
}

func (p *Plugin) readLoop() {
	var err error
	defer func() {
		p.finish(err)
		close(p.events)
	}()
	for {
		var kind int
		var b []byte
		kind, b, err = p.conn.ReadMessage()
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
		p.dispatch(m)
	}
}

func (p *Plugin) dispatch(m *inbound) {
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
		p.request(m)
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

func (p *Plugin) request(m *inbound) {
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
		p.replyError(m.ID, Errorf(CodePluginUnavailable, "plugin %s is shutting down", p.id))
	case !ok:
		p.replyError(m.ID, &Error{
			Code:    CodeMethodNotFound,
			Message: fmt.Sprintf("plugin %s has no method %q", p.id, m.Method),
			Details: map[string]any{"method": m.Method, "methods": served},
		})
	default:
		go p.serve(h, m)
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

func (p *Plugin) serve(h HandlerFunc, m *inbound) {
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
		p.replyError(m.ID, toError(err))
		return
	}
	b, err := json.Marshal(okMsg{Type: "response", ID: p.newID(), CorrelationID: m.ID, Success: true, Data: result})
	if err != nil {
		p.replyError(m.ID, Errorf(CodePluginError, "the result of %s cannot be encoded as JSON: %v", m.Method, err))
		return
	}
	if err := p.write(b); err != nil {
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

func (p *Plugin) replyError(correlationID string, e *Error) {
	msg := responseMsg{Type: "response", ID: p.newID(), CorrelationID: correlationID, Success: false, Error: e}
	if err := p.send(msg); err != nil {
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
func (p *Plugin) drain(grace time.Duration) {
	p.beginDrain()
	p.mu.Lock()
	idle := p.idle
	p.mu.Unlock()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-idle:
	case <-p.gone:
	case <-timer.C:
		p.mu.Lock()
		n := p.inflight
		p.mu.Unlock()
		p.logger.Printf("shutting down with %d request(s) still running after the %v grace period", n, grace)
	}
	p.cancelBase()
}

// close sends a close frame, waits briefly for the hub's, and closes the socket.
func (p *Plugin) close(code int, reason string) {
	deadline := time.Now().Add(closeTimeout)
	_ = p.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
	timer := time.NewTimer(closeTimeout)
	defer timer.Stop()
	select {
	case <-p.gone:
	case <-timer.C:
	}
	_ = p.conn.Close()
	<-p.gone
}

// finish marks the connection as over and fails every call waiting for an answer.
func (p *Plugin) finish(err error) {
	p.finishOnce.Do(func() {
		p.pmu.Lock()
		p.readErr = err
		p.closed = true
		waiting := p.pending
		p.pending = map[string]func(*inbound){}
		p.pmu.Unlock()
		close(p.gone)
		for _, fn := range waiting {
			fn(&inbound{Type: "response", Error: Errorf(CodeControllerUnavailable, "the connection to the hub closed before the answer came")})
		}
	})
}

func (p *Plugin) newID() string {
	return strconv.FormatUint(p.seq.Add(1), 10)
}

func (p *Plugin) addPending(id string, fn func(*inbound)) bool {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	if p.closed {
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

func (p *Plugin) write(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return p.conn.WriteMessage(websocket.TextMessage, b)
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
