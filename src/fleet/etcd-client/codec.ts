/**
 * The generated message codecs, loaded on first use (`import("./codec.js")`):
 * building the descriptors of all of `rpc.proto` costs tens of milliseconds,
 * which a plain range read (`range-codec.ts`) does not pay.
 */

export { create, fromBinary, toBinary } from "@bufbuild/protobuf";
export * from "./rpc_pb.js";
export { Event_EventType } from "./kv_pb.js";
