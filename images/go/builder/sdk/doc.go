// Package logomesh is the Go SDK for LogoMesh plugins: serve methods to other plugins and
// the host application, call theirs, and exchange events, all through the LogoMesh hub.
//
//	package main
//
//	import (
//		"context"
//		"log"
//
//		"logomesh.local/logomesh"
//	)
//
//	func main() {
//		sdk := logomesh.New()
//		sdk.Handle("greet", logomesh.Typed(func(ctx context.Context, in struct{ Name string }) (string, error) {
//			if in.Name == "" {
//				return "", logomesh.Errorf(logomesh.CodeInvalidArgument, "name is required")
//			}
//			return "hello " + in.Name, nil
//		}))
//		if err := sdk.Run(); err != nil {
//			log.Fatal(err)
//		}
//	}
//
// The connection details come from the environment LogoMesh sets in the plugin's
// container (LOGOMESH_HUB_SOCKET, LOGOMESH_PLUGIN_ID). Run connects, announces the
// methods and the On patterns in hello (the hub subscribes them before the plugin counts as
// ready), serves every request in its own goroutine, and returns nil after the hub's
// shutdown message or SIGTERM/SIGINT once the requests in flight have answered. If the
// connection is lost (the controller restarted), it connects again for up to
// LOGOMESH_RECONNECT_MS (default 60000) and says hello again, with the same methods and
// every pattern.
//
// The wire protocol is docs/protocol.md in the LogoMesh repository.
package logomesh
