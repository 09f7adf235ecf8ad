// The Plugin: its methods and subscriptions, and Run, which connects, serves and stops.
// Its parts: options.go, calls.go (outbound), connection.go (dial, hello, reconnect),
// waiting.go, dispatch.go (inbound), events.go, shutdown.go, errors.go, protocol.go (the
// constants and the codec), and logomeshtest (a fake hub for tests).

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
	"sort"
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

var methodName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Plugin is a connection to the LogoMesh hub: the methods it serves, the topics it
// listens to, and the calls and events it sends. Create it with New, register methods
// with Handle, then call Run.
type Plugin struct {
	id             string
	socket         string
	hubURL         string // a hub across nodes (LOGOMESH_HUB_URL): TCP with the key's handshake
	lastRefusal    string // the hub's last refusal said on stderr, said again only when it changes
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

	wmu   sync.Mutex
	seq   atomic.Uint64
	limit atomic.Int64 // the hub's maximum message size, once announced (0: not yet)

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
		hubURL:         os.Getenv("LOGOMESH_HUB_URL"),
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

	if p.socket == "" && p.hubURL == "" {
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

	// Marked ready (and the patterns registered since hello subscribed) as the answer is read.
	if _, err := p.hello(ctx, methods, firstHelloTimeout(p.connectTimeout), true); err != nil {
		p.close(l, websocket.CloseNormalClosure, "")
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errLost) {
			return Errorf(CodeControllerUnavailable, "the connection to the hub closed before the answer to hello came: %v", l.err)
		}
		return err
	}
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

func (p *Plugin) isDraining() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.draining
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
