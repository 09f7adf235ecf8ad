// @bufbuild/protobuf with google.protobuf.Value, loaded on first use (codecs.js). Only
// struct.proto's descriptors: the package's wkt index would build every well-known type.
export { create, fromBinary, toBinary } from '@bufbuild/protobuf';
export { NullValue, ValueSchema } from '@bufbuild/protobuf/wkt/google/protobuf/struct_pb.js';
