// A hub across nodes: the handshake's test vector, and a plugin connecting over TCP with its
// key, read afresh at every attempt, retrying after the hub's 401 (docs/kubernetes.md).

package logomesh_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"logomesh.local/logomesh"
)

const vector = `LogoMesh-HMAC-SHA256 plugin="analyzer", ts="1780000000000", nonce="0123456789abcdef0123456789abcdef", sig="68534c9927a1ceef4d282c2b274fd8d638d75733d050ede5a61c87939409c584"`

var authHeader = regexp.MustCompile(`^LogoMesh-HMAC-SHA256 plugin="([a-z0-9-]+)", ts="([0-9]+)", nonce="([0-9a-f]{32})", sig="([0-9a-f]{64})"$`)

// check is the hub's check, written here again: the plugin id when the signature is right.
func check(header string, keys map[string][]byte) string {
	m := authHeader.FindStringSubmatch(header)
	if m == nil {
		return ""
	}
	mac := hmac.New(sha256.New, keys[m[1]])
	fmt.Fprintf(mac, "logomesh-hub-v1\n%s\n%s\n%s", m[1], m[2], m[3])
	ts, _ := strconv.ParseInt(m[2], 10, 64)
	sig, _ := hex.DecodeString(m[4])
	if !hmac.Equal(mac.Sum(nil), sig) || time.Since(time.UnixMilli(ts)).Abs() > time.Minute {
		return ""
	}
	return m[1]
}

func TestHubAuthorizationReproducesTheVector(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	if got := logomesh.HubAuthorization(key, "analyzer", 1780000000000, "0123456789abcdef0123456789abcdef"); got != vector {
		t.Fatalf("got  %s\nwant %s", got, vector)
	}
}

func TestConnectsAcrossNodesWithItsKeyRetryingAfter401(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	rotated := make([]byte, 32)
	first := make([]byte, 32)
	_, _ = rand.Read(rotated)
	_, _ = rand.Read(first)
	if err := os.WriteFile(keyFile, first, 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []http.Header
	hello := make(chan map[string]any, 1)
	up := websocket.Upgrader{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		n := len(seen)
		mu.Unlock()
		if n == 1 || check(r.Header.Get("Authorization"), map[string][]byte{"subject": rotated}) != "subject" {
			// The Secret is rotated while the plugin waits to try again: it must read the new key.
			_ = os.WriteFile(keyFile, rotated, 0o600)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code":"LM_UNAUTHORIZED","message":"plugin handshake refused: unknown plugin"}`))
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		var msg map[string]any
		if err := c.ReadJSON(&msg); err != nil {
			return
		}
		_ = c.WriteJSON(map[string]any{"type": "response", "id": "h1", "correlationId": msg["id"], "success": true, "data": map[string]any{"plugin": "subject", "protocol": 1, "maxMessageBytes": 1048576}})
		hello <- msg
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	t.Setenv("LOGOMESH_HUB_CREDENTIAL", keyFile)
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:9") // never the way to the hub
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:9")
	var logs bytes.Buffer
	p := logomesh.New(logomesh.WithPluginID("subject"), logomesh.WithHubURL("ws://"+ln.Addr().String()+"/v1"), logomesh.WithLogger(log.New(&logs, "", 0)))
	p.Handle("echo", func(_ context.Context, args json.RawMessage) (any, error) { return args, nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.RunContext(ctx) }()
	select {
	case msg := <-hello:
		if fmt.Sprint(msg["methods"]) != "[echo]" {
			t.Fatalf("hello = %v", msg)
		}
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("no hello")
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("%d upgrade requests, want 2", len(seen))
	}
	a, b := authHeader.FindStringSubmatch(seen[0].Get("Authorization")), authHeader.FindStringSubmatch(seen[1].Get("Authorization"))
	if a == nil || b == nil || a[3] == b[3] {
		t.Fatalf("headers %q and %q: want two, each with its own nonce", seen[0].Get("Authorization"), seen[1].Get("Authorization"))
	}
	if !bytes.Contains(logs.Bytes(), []byte("LM_UNAUTHORIZED (401)")) || bytes.Contains(logs.Bytes(), []byte("sig=")) {
		t.Fatalf("stderr should name the refusal, never the header:\n%s", logs.String())
	}
}

func TestAHubURLWithoutAKeyFileIsRefusedAtOnce(t *testing.T) {
	t.Setenv("LOGOMESH_HUB_CREDENTIAL", "")
	p := logomesh.New(logomesh.WithPluginID("subject"), logomesh.WithHubURL("ws://127.0.0.1:9/v1"), logomesh.WithLogger(log.New(&bytes.Buffer{}, "", 0)))
	err := p.Run()
	var coded *logomesh.Error
	if !errors.As(err, &coded) || coded.Code != logomesh.CodeUnauthorized {
		t.Fatalf("Run() = %v, want LM_UNAUTHORIZED", err)
	}
}
