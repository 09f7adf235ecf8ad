// LogoMesh plugin SDK for Node.js (hub protocol 1, see docs/protocol.md and docs/sdk/node.md).
//
// A plugin creates one Plugin, registers its methods and topic handlers, and awaits run():
// run() connects to the hub over the Unix socket the controller names in
// LOGOMESH_HUB_SOCKET (or, on Kubernetes, over TCP to LOGOMESH_HUB_URL with an HMAC of its
// key: hub-auth.js), says hello, serves requests concurrently until the hub asks it to
// shut down (or the process gets SIGTERM/SIGINT), lets in-flight requests answer, closes
// the connection with status 1000 and exits with code 0. When an established connection is
// lost (the controller killed and restarted), it reconnects, says hello again and subscribes
// again, for up to LOGOMESH_RECONNECT_MS.
//
// The parts: plugin.js (the Plugin), options.js, calls.js (outbound), dial.js (opening a
// connection), hello.js (hello and subscriptions), connection.js (losing a connection and
// reconnecting), writes.js (writes and exchanges), dispatch.js (inbound), shutdown.js, errors.js, protocol.js
// (the constants and the codec), segments.js (shared memory), bridge.js (json, msgpack,
// protobuf), and testing.js ('logomesh/testing': a fake hub).
export { LogoMeshError } from './errors.js';
export { hubAuthorization } from './hub-auth.js';
export { Plugin } from './plugin.js';
export { MAX_DEPTH, PROTOCOL_VERSION, SDK_VERSION, topicMatches } from './protocol.js';
// Shared memory and the data bridge (segments.js, bridge.js; docs/shared-memory.md, docs/data-bridge.md).
export { Segment } from './segments.js';
export { decodeStructured, encodeStructured, frameStructured, unframeStructured } from './bridge.js';
export { ProtobufTypes, frameMessage, unframeMessage } from './protobuf-types.js';
