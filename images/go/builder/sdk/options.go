// How a plugin is configured: its options, their defaults, and what it reads from the
// environment LogoMesh sets.

package logomesh

import (
	"log"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Option configures a Plugin. The defaults come from the environment LogoMesh sets.
type Option func(*Plugin)

// WithSocket sets the hub's socket path (default: $LOGOMESH_HUB_SOCKET). It wins over
// $LOGOMESH_HUB_URL.
func WithSocket(path string) Option { return func(p *Plugin) { p.socket, p.hubURL = path, "" } }

// WithHubURL sets a hub across nodes, ws://host:port/v1 or wss:// (default:
// $LOGOMESH_HUB_URL). Every connection proves the plugin's identity with an HMAC of its key,
// the file $LOGOMESH_HUB_CREDENTIAL names (docs/kubernetes.md); a wss:// hub's certificate is
// checked against $LOGOMESH_HUB_CA when it is set.
func WithHubURL(url string) Option { return func(p *Plugin) { p.hubURL = url } }

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

// firstHelloTimeout is how long Run waits for the answer to its first hello: for a warm
// standby (LOGOMESH_STANDBY=1, set by the controller), whose hello the hub answers only
// when it is switched in, which may be hours later, as long as it takes.
func firstHelloTimeout(connectTimeout time.Duration) time.Duration {
	if os.Getenv("LOGOMESH_STANDBY") == "1" {
		return time.Duration(math.MaxInt64)
	}
	return connectTimeout
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
