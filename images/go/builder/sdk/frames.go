// Binary (msgpack) hub frames, when the plugin asks for them and the hub agrees
// (docs/protocol.md#binary-frames). The SDK's messages stay JSON inside (json.RawMessage
// data); a binary frame is transcoded at the edge of the connection, one way or the other.

package logomesh

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// FramesMsgpack asks for binary (msgpack) frames between the hub and the plugin.
const FramesMsgpack = "msgpack"

// WithFrames sets the frame encoding the plugin offers in hello: "msgpack" or "json"
// (default: $LOGOMESH_FRAMES, else "json"). The hub decides: it answers hello with the
// encoding both speak, and JSON stays where it does not agree.
func WithFrames(encoding string) Option { return func(p *Plugin) { p.frames = encoding } }

// framesFromEnv reads LOGOMESH_FRAMES; anything but "msgpack" is JSON.
func framesFromEnv() string {
	if strings.TrimSpace(os.Getenv("LOGOMESH_FRAMES")) == FramesMsgpack {
		return FramesMsgpack
	}
	return "json"
}

// maxSafeInt is 2^53-1 (JavaScript's Number.MAX_SAFE_INTEGER): the hub refuses binary
// frames with integers past it (a JSON peer could not receive them exactly), so such a
// message goes as a text frame.
const maxSafeInt = 1<<53 - 1

// errNotBinary says a message cannot go as msgpack without changing a value; it is sent as
// JSON text instead.
var errNotBinary = fmt.Errorf("not representable in a binary frame")

// jsonToMsgpack transcodes one JSON message to msgpack: numbers that are whole and within
// 2^53 as the smallest integer, the others as float64. errNotBinary for a whole number past
// 2^53 (written as an integer or not: the hub reads 1e20 as one).
func jsonToMsgpack(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v, err := numbersOf(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// numbersOf replaces each json.Number in v by an int64 or a float64, in place. It walks
// with an explicit stack: the depth was bounded when the message was encoded, but a stack
// costs nothing here.
func numbersOf(v any) (any, error) {
	conv := func(n json.Number) (any, error) {
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			if i > maxSafeInt || i < -maxSafeInt {
				return nil, errNotBinary
			}
			return i, nil
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, errNotBinary // an integer past int64, or a number past float64
		}
		// The hub reads every whole number as an integer: 1e20 too is past 2^53.
		if f == math.Trunc(f) && math.Abs(f) > maxSafeInt {
			return nil, errNotBinary
		}
		return f, nil
	}
	if n, ok := v.(json.Number); ok {
		return conv(n)
	}
	stack := []any{v}
	for len(stack) > 0 {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch c := top.(type) {
		case map[string]any:
			for k, e := range c {
				if n, ok := e.(json.Number); ok {
					x, err := conv(n)
					if err != nil {
						return nil, err
					}
					c[k] = x
				} else {
					stack = append(stack, e)
				}
			}
		case []any:
			for i, e := range c {
				if n, ok := e.(json.Number); ok {
					x, err := conv(n)
					if err != nil {
						return nil, err
					}
					c[i] = x
				} else {
					stack = append(stack, e)
				}
			}
		}
	}
	return v, nil
}

// msgpackToJSON transcodes one binary frame from the hub to the JSON the SDK reads. The hub
// sends only what a JSON peer could receive (string keys, no bin, no extensions), checked
// its depth, and kept it within the size both sides agreed.
func msgpackToJSON(b []byte) ([]byte, error) {
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	v, err := dec.DecodeInterfaceLoose()
	if err != nil {
		return nil, fmt.Errorf("not msgpack: %v", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("not a message a JSON peer could receive: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
