/**
 * Ogygia's etcd v3 client: gRPC over `node:http2` (`grpc.ts`) with messages
 * generated from etcd's protos (`proto/etcd`, `npm run gen:etcd`). The only
 * way into the generated code and the transport; `../etcd.ts` is its user.
 */

export {
  CompareResult,
  CompareTarget,
  EtcdClient,
  prefixRangeEnd,
  type EtcdCallOptions,
  type EtcdClientOptions,
  type EtcdWatcher,
  type PermissionType,
  type WatchHandlers,
  type WatchParams,
} from "./client.js";
export { GrpcCode, GrpcError, type TlsOptions } from "./grpc.js";
export {
  DecodeError,
  type RangeKeyValue,
  type RangeParams,
  type RangeResult,
  type RangeSummary,
  type RangeVisitor,
} from "./range-codec.js";
export type { WatchChange, WatchResult } from "./watch-codec.js";
