package logomeshtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// ProtocolDir is where the protocol's constants (protocol.json) and its conformance
// transcript (transcript.json) are: $LOGOMESH_PROTOCOL_DIR, else /opt/logomesh/protocol,
// where the builder image holds images/protocol/ of LogoMesh.
var ProtocolDir = func() string {
	if dir := os.Getenv("LOGOMESH_PROTOCOL_DIR"); dir != "" {
		return dir
	}
	return "/opt/logomesh/protocol"
}()

// Transcript is the protocol's recorded conformance session: steps the hub plays (send,
// ping) and what the plugin must answer (expect, expectClose). images/protocol/README.md of
// LogoMesh describes the format and the plugin it expects.
type Transcript struct {
	Plugin string           `json:"plugin"`
	Steps  []map[string]any `json:"steps"`
}

// LoadTranscript reads transcript.json from ProtocolDir.
func LoadTranscript(t testing.TB) Transcript {
	t.Helper()
	var tr Transcript
	loadJSON(t, "transcript.json", &tr)
	return tr
}

// LoadProtocol reads protocol.json, the protocol's constants, from ProtocolDir.
func LoadProtocol(t testing.TB) map[string]any {
	t.Helper()
	var c map[string]any
	loadJSON(t, "protocol.json", &c)
	return c
}

func loadJSON(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ProtocolDir, name))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		t.Fatalf("logomeshtest: %v", err)
	}
}

// Replay plays the hub's side of tr on this connection and fails the test at the first
// step the plugin does not follow. It returns what the transcript's $names were bound to.
func (c *Conn) Replay(tr Transcript) map[string]any {
	c.t.Helper()
	bound, err := c.ReplayErr(tr)
	if err != nil {
		c.t.Fatal(err)
	}
	return bound
}

// ReplayErr is Replay returning the mismatch instead of failing the test.
func (c *Conn) ReplayErr(tr Transcript) (map[string]any, error) {
	bound := map[string]any{}
	last := "(none)"
	for i, step := range tr.Steps {
		if err := c.step(step, bound, &last); err != nil {
			where := fmt.Sprintf("step %d", i+1)
			if note, ok := step["note"].(string); ok {
				where += " (" + note + ")"
			}
			return bound, fmt.Errorf("logomeshtest: %s: %v; last frame from the plugin: %.300s", where, err, last)
		}
	}
	return bound, nil
}

func (c *Conn) step(step map[string]any, bound map[string]any, last *string) error {
	if frame, ok := step["send"]; ok {
		text, err := render(frame, bound)
		if err != nil {
			return err
		}
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.ws.WriteMessage(websocket.TextMessage, []byte(text))
	}
	if want, ok := step["expect"]; ok {
		select {
		case m := <-c.in:
			b, _ := json.Marshal(m)
			*last = string(b)
			if problem := match(want, map[string]any(m), bound, "the frame"); problem != "" {
				return errors.New(problem)
			}
			return nil
		case <-c.closed:
			return fmt.Errorf("the connection closed (%d)", c.closeCode)
		case <-time.After(Wait):
			return fmt.Errorf("nothing within %v", Wait)
		}
	}
	if data, ok := step["ping"].(string); ok {
		if err := c.ws.WriteControl(websocket.PingMessage, []byte(data), time.Now().Add(Wait)); err != nil {
			return err
		}
		select {
		case got := <-c.pongs:
			if got != data {
				return fmt.Errorf("the pong carried %q, not %q", got, data)
			}
			return nil
		case <-time.After(Wait):
			return fmt.Errorf("no pong within %v", Wait)
		}
	}
	if code, ok := step["expectClose"].(float64); ok {
		select {
		case <-c.closed:
			if c.closeCode != int(code) {
				return fmt.Errorf("closed with %d, expected %d", c.closeCode, int(code))
			}
			return nil
		case m := <-c.in:
			return fmt.Errorf("expected a close, got %v", m)
		case <-time.After(Wait):
			return fmt.Errorf("not closed within %v", Wait)
		}
	}
	return fmt.Errorf("unknown step %v", step)
}

// generated is the JSON text a generator object ({"$nested": n}, {"$string": n}) stands for.
func generated(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	for key, n := range m {
		count, isNumber := n.(float64)
		switch {
		case isNumber && key == "$nested":
			return strings.Repeat("[", int(count)) + strings.Repeat("]", int(count)), true
		case isNumber && key == "$string":
			return `"` + strings.Repeat("x", int(count)) + `"`, true
		}
	}
	return "", false
}

// render is a frame to send as text: $names replaced by what they were bound to, generators
// by their text (written into the text directly).
func render(frame any, bound map[string]any) (string, error) {
	var texts []string
	var walk func(v any) (any, error)
	walk = func(v any) (any, error) {
		if text, ok := generated(v); ok {
			texts = append(texts, text)
			return fmt.Sprintf("@@lm-generated-%d@@", len(texts)-1), nil
		}
		switch x := v.(type) {
		case string:
			if strings.HasPrefix(x, "$") {
				value, ok := bound[x[1:]]
				if !ok {
					return nil, fmt.Errorf("%s is used before the plugin sent it", x)
				}
				return value, nil
			}
		case map[string]any:
			out := map[string]any{}
			for k, e := range x {
				w, err := walk(e)
				if err != nil {
					return nil, err
				}
				out[k] = w
			}
			return out, nil
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				w, err := walk(e)
				if err != nil {
					return nil, err
				}
				out[i] = w
			}
			return out, nil
		}
		return v, nil
	}
	v, err := walk(frame)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	text := strings.TrimSuffix(b.String(), "\n")
	for i, t := range texts {
		text = strings.Replace(text, fmt.Sprintf(`"@@lm-generated-%d@@"`, i), t, 1)
	}
	return text, nil
}

func nested(v any, n int) bool {
	for level := 1; level <= n; level++ {
		a, ok := v.([]any)
		switch {
		case !ok:
			return false
		case level == n:
			return len(a) == 0
		case len(a) != 1:
			return false
		}
		v = a[0]
	}
	return false
}

func show(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// match says why actual does not match expected ("" when it does), binding $names.
func match(expected, actual any, bound map[string]any, where string) string {
	if s, ok := expected.(string); ok && strings.HasPrefix(s, "$") {
		if prior, seen := bound[s[1:]]; seen {
			if !reflect.DeepEqual(prior, actual) {
				return fmt.Sprintf("%s: expected %s (as %s), found %s", where, show(prior), s, show(actual))
			}
			return ""
		}
		bound[s[1:]] = actual
		return ""
	}
	if _, ok := generated(expected); ok {
		for key, n := range expected.(map[string]any) {
			count := int(n.(float64))
			if (key == "$nested" && !nested(actual, count)) || (key == "$string" && actual != strings.Repeat("x", count)) {
				return fmt.Sprintf("%s: expected %s %d, found %s", where, key, count, show(actual))
			}
		}
		return ""
	}
	switch e := expected.(type) {
	case map[string]any:
		a, ok := actual.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: expected an object, found %s", where, show(actual))
		}
		for k, v := range e {
			got, present := a[k]
			if !present {
				return fmt.Sprintf("%s: '%s' is missing", where, k)
			}
			inner := k
			if where != "the frame" {
				inner = where + "." + k
			}
			if problem := match(v, got, bound, inner); problem != "" {
				return problem
			}
		}
		return ""
	case []any:
		a, ok := actual.([]any)
		if !ok || len(a) != len(e) {
			return fmt.Sprintf("%s: expected %s, found %s", where, show(expected), show(actual))
		}
		for i := range e {
			if problem := match(e[i], a[i], bound, fmt.Sprintf("%s[%d]", where, i)); problem != "" {
				return problem
			}
		}
		return ""
	}
	if !reflect.DeepEqual(expected, actual) {
		return fmt.Sprintf("%s: expected %s, found %s", where, show(expected), show(actual))
	}
	return ""
}
