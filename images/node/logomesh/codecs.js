// The codecs of the data bridge (bridge.js) and of binary frames (protocol.js), loaded the
// first time one is used. Most plugins use neither, and evaluating @msgpack/msgpack and
// @bufbuild/protobuf at import took an idle plugin past its memory target
// (docs/performance.md#nodejs-plugins). They load with require() (of an ES module: Node.js
// 20.19 or 22.12 and later), so the bridge's functions stay synchronous.
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

// In the image, 'logomesh' is index.bundle.mjs, and each codec has a bundled sibling
// (images/node/Dockerfile): one file to read on first use instead of a package's dozens.
// The sources load the packages from node_modules.
const suffix = import.meta.url.endsWith('.bundle.mjs') ? '.bundle.cjs' : '.js';

let msgpackCodec;
let protobufCodec;

/** @returns {typeof import('@msgpack/msgpack')} encode and decode of @msgpack/msgpack */
export function msgpack() {
  return (msgpackCodec ??= load(`./codec-msgpack${suffix}`));
}

/** create, fromBinary, toBinary of @bufbuild/protobuf, and google.protobuf.Value's ValueSchema and NullValue */
export function protobuf() {
  return (protobufCodec ??= load(`./codec-protobuf${suffix}`));
}
