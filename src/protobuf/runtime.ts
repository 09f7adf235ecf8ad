import { createRequire } from 'node:module';

type Protobuf = typeof import('@bufbuild/protobuf');
type WellKnownTypes = typeof import('@bufbuild/protobuf/wkt');

const require = createRequire(import.meta.url);
let loaded: { readonly pb: Protobuf; readonly wkt: WellKnownTypes } | undefined;

/**
 * @bufbuild/protobuf, loaded when a declared message type is first used, not with the
 * modules that import this one: its well-known types build their descriptors when they load
 * (about 8 ms), which every `logomesh run` and every manifest load paid, though only a
 * manifest with `coordination.protobuf` needs them. Loaded through require (its CommonJS
 * build) so that the first use can stay synchronous (loadManifest is). Every runtime use of
 * the library in src/protobuf/ goes through here: one copy of it, never its CommonJS build's
 * descriptors handed to its ES module build's functions.
 */
export function protobufRuntime(): { readonly pb: Protobuf; readonly wkt: WellKnownTypes } {
  loaded ??= { pb: require('@bufbuild/protobuf') as Protobuf, wkt: require('@bufbuild/protobuf/wkt') as WellKnownTypes };
  return loaded;
}
