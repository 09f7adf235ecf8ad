// The hub protocol's constants and its codec: JSON frames in and out, within the depth and
// size limits (docs/protocol.md).

package logomesh

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// The hub protocol's constants (docs/protocol.md). They mirror images/protocol/protocol.json
// of LogoMesh; the SDK's tests check that they match it.
const (
	// ProtocolVersion is the hub protocol major version this SDK speaks.
	ProtocolVersion = 1
	// Version is the SDK's version, sent in hello as "go/<Version>".
	Version = "0.1.0"
	// MaxDepth is how deep arrays and objects may nest in a message, the message object
	// itself being level 1. Deeper ones are refused both ways.
	MaxDepth = 64
	// DefaultMaxMessageBytes is the hub's maximum message size unless the operator sets one.
	DefaultMaxMessageBytes = 1 << 20
	// MaxMessageBytes is the largest maximum an operator may configure: the SDK's limit
	// until the hub announces its own in the answer to hello. A frame over it is not even
	// read: the connection closes with status 1009.
	MaxMessageBytes = 16 << 20
	// HardLimitFactor: the hub does not read a frame over this many times its maximum.
	HardLimitFactor = 16
	// IDMaxLength is the longest message id.
	IDMaxLength = 128
)

var (
	// MessagesToHub are the message types a client sends; MessagesFromHub those the hub sends.
	MessagesToHub   = []string{"hello", "request", "response", "event", "broadcast", "subscribe", "unsubscribe", "segment"}
	MessagesFromHub = []string{"request", "response", "event", "broadcast", "shutdown", "error"}
	// WireCodes are the error codes that travel on the wire, and who sends them.
	WireCodes = map[string]string{
		CodeProtocol:              "hub, sdk",
		CodeMessageTooLarge:       "hub, sdk",
		CodePermissionDenied:      "hub",
		CodeRateLimited:           "hub",
		CodeTimeout:               "hub, sdk",
		CodePluginUnavailable:     "hub, sdk",
		CodePluginExited:          "hub",
		CodePluginError:           "hub, sdk",
		CodeMethodNotFound:        "hub, sdk",
		CodeInvalidArgument:       "sdk",
		CodeControllerUnavailable: "sdk",
		CodeSegment:               "hub, sdk",
		CodeMemoryQuota:           "hub",
		CodeSchema:                "hub",
	}
)

// inbound is every field any message from the hub may carry; unknown fields are ignored.
type inbound struct {
	Type          string          `json:"type"`
	ID            string          `json:"id"`
	From          string          `json:"from"`
	Timestamp     int64           `json:"timestamp"`
	CorrelationID string          `json:"correlationId"`
	Success       bool            `json:"success"`
	Data          json.RawMessage `json:"data"`
	Error         *Error          `json:"error"`
	Method        string          `json:"method"`
	Timeout       int64           `json:"timeout"`
	Topic         string          `json:"topic"`

	lost bool // made up by the SDK: the connection ended before the answer came
}

type helloMsg struct {
	Type          string   `json:"type"`
	ID            string   `json:"id"`
	Protocol      int      `json:"protocol"`
	SDK           string   `json:"sdk"`
	Methods       []string `json:"methods"`
	Subscriptions []string `json:"subscriptions"`
	Encodings     []string `json:"encodings,omitempty"`
}

// helloAnswer is what the hub's answer to hello may say; MaxMessageBytes is 0 when unsaid.
type helloAnswer struct {
	MaxMessageBytes int64  `json:"maxMessageBytes"`
	Encoding        string `json:"encoding"`
}

type requestMsg struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	To      []string        `json:"to"`
	Method  string          `json:"method"`
	Data    json.RawMessage `json:"data"`
	Timeout int64           `json:"timeout,omitempty"`
	// Segments the request carries, checked (and granted) by the hub before delivery.
	Segments []SegmentRef `json:"segments,omitempty"`
}

// responseMsg is a failed response; a successful one is okMsg.
type responseMsg struct {
	Type          string `json:"type"`
	ID            string `json:"id"`
	CorrelationID string `json:"correlationId"`
	Success       bool   `json:"success"`
	Error         *Error `json:"error"`
}

type okMsg struct {
	Type          string `json:"type"`
	ID            string `json:"id"`
	CorrelationID string `json:"correlationId"`
	Success       bool   `json:"success"`
	Data          any    `json:"data"`
}

type eventMsg struct {
	Type  string          `json:"type"`
	ID    string          `json:"id"`
	Topic string          `json:"topic,omitempty"`
	Data  json.RawMessage `json:"data"`
	To    []string        `json:"to,omitempty"`
	// Ack asks the hub to answer: published, or refused (EmitAcked, BroadcastAcked).
	Ack bool `json:"ack,omitempty"`
}

type topicMsg struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	Topic string `json:"topic"`
}

type shutdownData struct {
	GraceMs *int64 `json:"graceMs"`
}

var jsonNull = json.RawMessage("null")

// orNull keeps a missing data field from reaching a handler as zero bytes.
func orNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return jsonNull
	}
	return b
}

// depth is how deep arrays and objects nest in a JSON text (strings skipped): exact when
// over MaxDepth, otherwise a bound no greater than it (a text with at most MaxDepth
// opening brackets is not scanned).
func depth(b []byte) int {
	if n := bytes.Count(b, []byte{'['}) + bytes.Count(b, []byte{'{'}); n <= MaxDepth {
		return n
	}
	level, max, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if level++; level > max {
				max = level
			}
		case c == ']' || c == '}':
			level--
		}
	}
	return max
}

// topFields reads the string values of type, id and correlationId at the top level of a
// frame without parsing it (it may be too deep or too large to parse).
func topFields(b []byte) map[string]string {
	found := map[string]string{}
	level, state, key := 0, 0, "" // state at level 1: 0 nothing, 1 a key may come, 2 a ':', 3 a value
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			start := i
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if level != 1 || i >= len(b) {
				continue
			}
			var s string
			ok := json.Unmarshal(b[start:i+1], &s) == nil
			switch state {
			case 1:
				key, state = "", 2
				if ok && (s == "type" || s == "id" || s == "correlationId") {
					key = s
				}
			case 3:
				if _, seen := found[key]; ok && key != "" && !seen {
					found[key] = s
				}
				state = 0
			}
		case c == '[' || c == '{':
			level++
			if level == 1 && c == '{' {
				state = 1
			} else if level == 2 {
				state = 0
			}
		case c == ']' || c == '}':
			level--
		case level == 1 && c == ':':
			if state == 2 {
				state = 3
			} else {
				state = 0
			}
		case level == 1 && c == ',':
			state = 1
		}
	}
	return found
}

// refusal is a frame from the hub the SDK will not handle: too large, too deep, or not
// JSON; fields holds its top-level type, id and correlationId when they could be read.
type refusal struct {
	code, message string
	fields        map[string]string
}

// decode parses one frame from the hub, within maxBytes and MaxDepth.
func decode(b []byte, maxBytes int) (*inbound, *refusal) {
	if len(b) > maxBytes {
		return nil, &refusal{CodeMessageTooLarge, fmt.Sprintf("a message of %d bytes exceeds the maximum message size of %d bytes", len(b), maxBytes), topFields(b)}
	}
	if d := depth(b); d > MaxDepth {
		return nil, &refusal{CodeProtocol, fmt.Sprintf("a message nested %d levels deep exceeds the maximum depth of %d", d, MaxDepth), topFields(b)}
	}
	m := new(inbound)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, &refusal{CodeProtocol, fmt.Sprintf("a message that is not a JSON object: %v", err), topFields(b)}
	}
	return m, nil
}

// encodeError says why a message cannot be sent: not JSON (a cycle, NaN, a failing
// MarshalJSON), too deep, or (tooLarge) too large.
type encodeError struct {
	reason   string
	tooLarge bool
}

func (e *encodeError) Error() string { return e.reason }

// encode marshals a message for the wire, within maxBytes and MaxDepth. A MarshalJSON
// that panics is an encodeError too, not a crash.
func encode(v any, maxBytes int) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, &encodeError{reason: fmt.Sprintf("cannot be encoded as JSON: it panicked: %v", r)}
		}
	}()
	b, err = json.Marshal(v)
	if err != nil {
		return nil, &encodeError{reason: "cannot be encoded as JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	if d := depth(b); d > MaxDepth {
		return nil, &encodeError{reason: fmt.Sprintf("is nested %d levels deep, over the maximum depth of %d", d, MaxDepth)}
	}
	if len(b) > maxBytes {
		return nil, &encodeError{reason: fmt.Sprintf("is %d bytes, over the maximum message size of %d bytes", len(b), maxBytes), tooLarge: true}
	}
	return b, nil
}
