package logomesh

import (
	"context"
	"encoding/json"
	"fmt"
)

// Typed adapts a function of typed arguments to a HandlerFunc: the request's data is
// decoded into A with encoding/json (unknown fields are ignored; null or no data leaves
// A's zero value), and a decoding failure answers LM_INVALID_ARGUMENT without calling fn.
//
//	sdk.Handle("add", logomesh.Typed(func(ctx context.Context, in struct{ A, B int }) (int, error) {
//		return in.A + in.B, nil
//	}))
func Typed[A, R any](fn func(ctx context.Context, args A) (R, error)) HandlerFunc {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var args A
		if err := json.Unmarshal(raw, &args); err != nil {
			method := "the method"
			if r := RequestOf(ctx); r != nil {
				method = r.Method
			}
			return nil, &Error{
				Code:    CodeInvalidArgument,
				Message: fmt.Sprintf("invalid arguments for %s: %v", method, err),
				Details: map[string]any{"method": method},
			}
		}
		return fn(ctx, args)
	}
}
