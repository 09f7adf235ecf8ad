package logomesh

import "encoding/json"

// ProtocolVersion is the hub protocol major version this SDK speaks.
const ProtocolVersion = 1

// Version is the SDK's version, sent in hello as "go/<Version>".
const Version = "0.1.0"

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
	Type     string   `json:"type"`
	ID       string   `json:"id"`
	Protocol int      `json:"protocol"`
	SDK      string   `json:"sdk"`
	Methods  []string `json:"methods"`
}

type requestMsg struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	To      []string        `json:"to"`
	Method  string          `json:"method"`
	Data    json.RawMessage `json:"data"`
	Timeout int64           `json:"timeout,omitempty"`
}

// responseMsg is a failed response; a successful one is okMsg.
type responseMsg struct {
	Type          string `json:"type"`
	ID            string `json:"id"`
	CorrelationID string `json:"correlationId"`
	Success       bool   `json:"success"`
	Error         *Error `json:"error"`
}

type eventMsg struct {
	Type  string          `json:"type"`
	ID    string          `json:"id"`
	Topic string          `json:"topic,omitempty"`
	Data  json.RawMessage `json:"data"`
	To    []string        `json:"to,omitempty"`
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
