package logomesh

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Error codes a plugin sees. The hub answers with the first group. The SDK itself answers
// requests with CodePluginError, CodeMethodNotFound, CodeInvalidArgument (see Typed) and
// CodePluginUnavailable (while shutting down), and fails calls with CodeInvalidArgument,
// CodeTimeout (no answer from the hub in time) and CodeControllerUnavailable.
const (
	CodePermissionDenied  = "LM_PERMISSION_DENIED"
	CodePluginUnavailable = "LM_PLUGIN_UNAVAILABLE"
	CodeTimeout           = "LM_TIMEOUT"
	CodePluginExited      = "LM_PLUGIN_EXITED"
	CodeMessageTooLarge   = "LM_MESSAGE_TOO_LARGE"
	CodeProtocol          = "LM_PROTOCOL"
	CodeRateLimited       = "LM_RATE_LIMITED"

	// CodePluginError: a handler returned an error that is not an *Error, or panicked.
	CodePluginError = "LM_PLUGIN_ERROR"
	// CodeMethodNotFound: a request named a method this plugin does not serve.
	CodeMethodNotFound = "LM_METHOD_NOT_FOUND"
	// CodeInvalidArgument: a request's data does not fit the method (see Typed).
	CodeInvalidArgument = "LM_INVALID_ARGUMENT"
	// CodeControllerUnavailable: the hub cannot be reached, or the connection to it closed.
	CodeControllerUnavailable = "LM_CONTROLLER_UNAVAILABLE"
	// CodeSegment: a shared-memory segment request or handle was refused.
	CodeSegment = "LM_SEGMENT"
	// CodeMemoryQuota: an allocation passed the plugin's or the pool's quota.
	CodeMemoryQuota = "LM_MEMORY_QUOTA"
	// CodeSchema: a call's params or result broke the method's declared schema.
	CodeSchema = "LM_SCHEMA"
)

// Error is a coded error: what a failed call returns, and what a handler returns to
// answer with its own code. Any other error a handler returns is sent as LM_PLUGIN_ERROR
// with the error's text as message.
type Error struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// NewError returns an *Error; details may be nil.
func NewError(code, message string, details map[string]any) *Error {
	return &Error{Code: code, Message: message, Details: details}
}

// Errorf returns an *Error whose message is formatted as with fmt.Sprintf.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, &logomesh.Error{Code: logomesh.CodeTimeout}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// CodeOf returns the code of the first *Error in err's chain, or "" if there is none.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// MarshalJSON writes details as an object ({} when nil), as the protocol expects.
func (e *Error) MarshalJSON() ([]byte, error) {
	details := e.Details
	if details == nil {
		details = map[string]any{}
	}
	return json.Marshal(struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	}{e.Code, e.Message, details})
}

// UnmarshalJSON accepts details of any JSON type: a non-object is kept under "value".
func (e *Error) UnmarshalJSON(b []byte) error {
	var raw struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Details json.RawMessage `json:"details"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	e.Code, e.Message, e.Details = raw.Code, raw.Message, nil
	if len(raw.Details) > 0 && string(raw.Details) != "null" {
		if err := json.Unmarshal(raw.Details, &e.Details); err != nil {
			var v any
			_ = json.Unmarshal(raw.Details, &v)
			e.Details = map[string]any{"value": v}
		}
	}
	return nil
}

// toError turns what a handler returned (or panicked with) into the error sent back. An
// error whose methods panic is answered all the same.
func toError(err error) (e *Error) {
	defer func() {
		if r := recover(); r != nil {
			e = &Error{Code: CodePluginError, Message: fmt.Sprintf("the method failed with an error that panicked when read: %v", r)}
		}
	}()
	if errors.As(err, &e) && e.Code != "" {
		return e
	}
	return &Error{Code: CodePluginError, Message: err.Error(), Details: map[string]any{"type": fmt.Sprintf("%T", err)}}
}
