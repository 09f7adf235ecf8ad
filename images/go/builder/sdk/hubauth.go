// Reaching a hub across nodes (docs/kubernetes.md, "The hub across nodes"). When
// LOGOMESH_HUB_URL is set (ws://host:port/v1 or wss://), the plugin connects there over TCP
// instead of its Unix socket, and proves who it is at every connection attempt: an
// HMAC-SHA256 with its own key (the file LOGOMESH_HUB_CREDENTIAL names, read afresh each time:
// the kubelet updates a rotated Secret in place) over a fresh timestamp and nonce, in the
// upgrade request's Authorization header. The key never travels; the header is never logged.

package logomesh

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// CodeUnauthorized is the hub's refusal of a plugin that did not prove who it is.
const CodeUnauthorized = "LM_UNAUTHORIZED"

// HubAuthorization is the Authorization header a plugin sends to a hub across nodes: nonce is
// 32 lower-case hex digits, ts milliseconds since the epoch. The SDK computes it itself.
func HubAuthorization(key []byte, pluginID string, ts int64, nonce string) string {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "logomesh-hub-v1\n%s\n%d\n%s", pluginID, ts, nonce)
	return fmt.Sprintf(`LogoMesh-HMAC-SHA256 plugin="%s", ts="%d", nonce="%s", sig="%s"`, pluginID, ts, nonce, hex.EncodeToString(mac.Sum(nil)))
}

// hubHeader is one attempt's header, with the key read from its file now and a new nonce.
func (p *Plugin) hubHeader() (http.Header, error) {
	file := os.Getenv("LOGOMESH_HUB_CREDENTIAL")
	if file == "" {
		return nil, Errorf(CodeUnauthorized, "LOGOMESH_HUB_URL is set but LOGOMESH_HUB_CREDENTIAL is not: the plugin has no key to prove who it is")
	}
	if p.id == "" {
		return nil, Errorf(CodeUnauthorized, "LOGOMESH_HUB_URL is set but the plugin has no id (LOGOMESH_PLUGIN_ID) to prove")
	}
	key, err := os.ReadFile(file)
	if err != nil {
		return nil, Errorf(CodeUnauthorized, "the hub key %s cannot be read: %v", file, err)
	}
	if len(key) == 0 {
		return nil, Errorf(CodeUnauthorized, "the hub key %s is empty", file)
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, Errorf(CodeUnauthorized, "no random nonce: %v", err)
	}
	h := http.Header{}
	h.Set("Authorization", HubAuthorization(key, p.id, time.Now().UnixMilli(), hex.EncodeToString(nonce)))
	return h, nil
}

// hubTLS is the TLS of a wss:// hub: its certificate checked against LOGOMESH_HUB_CA, else the system's CAs.
func hubTLS() (*tls.Config, error) {
	file := os.Getenv("LOGOMESH_HUB_CA")
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, Errorf(CodeControllerUnavailable, "the hub's CA %s cannot be read: %v", file, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, Errorf(CodeControllerUnavailable, "the hub's CA %s holds no PEM certificate", file)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// hubRefusal describes the hub's answer to an upgrade it refused: its code (from the JSON body) and status.
func hubRefusal(resp *http.Response) string {
	var body struct {
		Code string `json:"code"`
	}
	if resp.Body != nil {
		if data, err := io.ReadAll(io.LimitReader(resp.Body, 4096)); err == nil {
			_ = json.Unmarshal(data, &body)
		}
	}
	if body.Code == "" {
		body.Code = "HTTP"
	}
	return fmt.Sprintf("%s (%d)", body.Code, resp.StatusCode)
}

// retryableRefusal: a hub across nodes that does not know the plugin yet (or was given a rotated key) answers 401.
func retryableRefusal(status int) bool {
	return status == http.StatusUnauthorized || status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}
