// @msgpack/msgpack, loaded on first use (codecs.js).
export { decode, encode } from '@msgpack/msgpack';
