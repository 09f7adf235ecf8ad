// Command tokenizer is a LogoMesh plugin that serves one method:
//
//	tokenize {"text": "Don't panic, Arthur!"} -> {"tokens": ["don't", "panic", "arthur"]}
package main

import (
	"context"
	"encoding/json"
	"log"

	"logomesh.local/logomesh"
)

func main() {
	sdk := logomesh.New()
	register(sdk)
	if err := sdk.Run(); err != nil {
		log.Fatal(err)
	}
}

// register adds the plugin's methods; the tests run it against a fake hub.
func register(sdk *logomesh.Plugin) {
	sdk.Handle("tokenize", tokenize)
}

// tokenize answers {"tokens": [...]}; a missing or non-string text is LM_INVALID_ARGUMENT.
func tokenize(ctx context.Context, args json.RawMessage) (any, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(args, &fields); err != nil {
		return nil, invalid("the arguments must be an object like {\"text\": \"...\"}", jsonType(args))
	}
	raw, ok := fields["text"]
	if !ok {
		return nil, invalid("text is required", "nothing")
	}
	var text string
	if found := jsonType(raw); found != "string" || json.Unmarshal(raw, &text) != nil {
		return nil, invalid("text must be a string", found)
	}
	return map[string][]string{"tokens": Tokens(text)}, nil
}

func invalid(message, found string) *logomesh.Error {
	return logomesh.NewError(logomesh.CodeInvalidArgument, message, map[string]any{
		"field":    "text",
		"expected": "string",
		"found":    found,
	})
}

// jsonType names the JSON type of a value for error messages.
func jsonType(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return "invalid JSON"
	}
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	default:
		return "object"
	}
}
