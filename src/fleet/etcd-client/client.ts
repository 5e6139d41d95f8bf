/**
 * A small etcd v3 client: the KV, Lease, Watch and Auth calls Ogygia makes,
 * over `grpc.ts`, with messages from the code generated from etcd's protos
 * (`npm run gen:etcd`). Failures are `GrpcError`s carrying etcd's status
 * and message.
 */

import type { MessageInitShape } from "@bufbuild/protobuf";

import type * as CodecModule from "./codec.js";

import type { Permission_Type } from "./auth_pb.js";
import {
  Channel,
  GrpcCode,
  GrpcError,
  type BidiStream,
  type CallOptions,
  type TlsOptions,
} from "./grpc.js";
import {
  decodeRangeResponse,
  visitRangeResponse,
  type RangeSummary,
  type RangeVisitor,
  encodeRangeRequest,
  type RangeParams,
  type RangeResult,
} from "./range-codec.js";
import type {
  Compare_CompareResult,
  Compare_CompareTarget,
  DeleteRangeRequestSchema,
  DeleteRangeResponse,
  LeaseGrantResponse,
  PutRequestSchema,
  PutResponse,
  TxnRequestSchema,
  TxnResponse,
} from "./rpc_pb.js";
import { decodeWatchResponse, type WatchChange } from "./watch-codec.js";

type Codec = typeof CodecModule;

/** What a role may do on a key range. */
export type PermissionType = "read" | "write" | "readwrite";

export interface EtcdClientOptions {
  /** `http://host:port` or `https://host:port`, tried in order. */
  endpoints: readonly string[];
  /** The default time a call may take, connecting included. */
  timeoutMs: number;
  /** CA, client certificate and key for `https://` endpoints. */
  tls?: TlsOptions | undefined;
  /** A user to authenticate as; its token goes with every call. */
  auth?: { username: string; password: string } | undefined;
}

/** Per-call options: a deadline other than the client's default. */
export interface EtcdCallOptions {
  timeoutMs?: number | undefined;
}

export interface WatchParams {
  key: Uint8Array;
  /** As for a range: the end of the watched range (exclusive). */
  rangeEnd?: Uint8Array | undefined;
  /** The first revision to deliver (inclusive); without it, changes from now on. */
  startRevision?: bigint | undefined;
}

export interface WatchHandlers {
  /** Changes, in etcd's order; keys and values are views into the message received. */
  onEvents(events: WatchChange[]): void;
  /** The watch is in place on a server (again, after a reconnection). */
  onConnected?(): void;
  /** The stream was lost; the watch is made again from the next revision. */
  onDisconnected?(error: GrpcError): void;
  /**
   * etcd cancelled the watch (its start revision was compacted, ...): it
   * will not resume. `compactRevision` is set when compaction was the cause.
   */
  onCanceled(error: GrpcError, compactRevision: bigint): void;
}

/** A watch in progress. */
export interface EtcdWatcher {
  /** Stops the watch; nothing more is delivered. */
  cancel(): void;
}

const KV = "/etcdserverpb.KV/";
const LEASE = "/etcdserverpb.Lease/";

/** How long a lost watch waits before it is made again (doubling up to the maximum). */
const REWATCH_MIN_MS = 250;
const REWATCH_MAX_MS = 5000;

/** etcd's wording for a token it no longer accepts (a restart, an expiry). */
function isInvalidToken(err: unknown): boolean {
  return (
    err instanceof GrpcError &&
    err.code === GrpcCode.UNAUTHENTICATED &&
    err.details.includes("invalid auth token")
  );
}

/** An etcd v3 client over one HTTP/2 connection (to the first endpoint that answers). */
export class EtcdClient {
  private readonly channel: Channel;
  private codec: Promise<Codec> | undefined;
  private token: Promise<string> | undefined;

  constructor(private readonly options: EtcdClientOptions) {
    this.channel = new Channel({ endpoints: options.endpoints, tls: options.tls });
  }

  private loadCodec(): Promise<Codec> {
    this.codec ??= import("./codec.js");
    return this.codec;
  }

  private deadline(options?: EtcdCallOptions): number {
    return Date.now() + (options?.timeoutMs ?? this.options.timeoutMs);
  }

  /** The `token` header, authenticating first if need be. */
  private async metadata(deadline: number, renew = false): Promise<Record<string, string>> {
    const auth = this.options.auth;
    if (!auth) return {};
    if (renew) this.token = undefined;
    this.token ??= this.authenticate(auth, deadline);
    const pending = this.token;
    try {
      return { token: await pending };
    } catch (err) {
      if (this.token === pending) this.token = undefined;
      throw err;
    }
  }

  private async authenticate(
    auth: { username: string; password: string },
    deadline: number,
  ): Promise<string> {
    const codec = await this.loadCodec();
    const request = codec.toBinary(
      codec.AuthenticateRequestSchema,
      codec.create(codec.AuthenticateRequestSchema, {
        name: auth.username,
        password: auth.password,
      }),
    );
    const response = await this.channel.unary("/etcdserverpb.Auth/Authenticate", request, {
      deadline,
    });
    return codec.fromBinary(codec.AuthenticateResponseSchema, response).token;
  }

  /** A unary call with the token, authenticating again once if etcd rejects the token. */
  private async call(path: string, request: Uint8Array, deadline: number): Promise<Buffer> {
    const options: CallOptions = { deadline, metadata: await this.metadata(deadline) };
    try {
      return await this.channel.unary(path, request, options);
    } catch (err) {
      if (!isInvalidToken(err)) throw err;
      const metadata = await this.metadata(deadline, true);
      return this.channel.unary(path, request, { deadline, metadata });
    }
  }

  /** KV.Range, decoded by the hand-written codec (keys and values are views). */
  async range(params: RangeParams, options?: EtcdCallOptions): Promise<RangeResult> {
    const response = await this.call(
      `${KV}Range`,
      encodeRangeRequest(params),
      this.deadline(options),
    );
    return decodeRangeResponse(response);
  }

  /**
   * KV.Range with each key-value handed to `visit` as offsets into the
   * response (no object per key): for reads of many keys.
   */
  async rangeVisit(
    params: RangeParams,
    visit: RangeVisitor,
    options?: EtcdCallOptions,
  ): Promise<RangeSummary> {
    const response = await this.call(
      `${KV}Range`,
      encodeRangeRequest(params),
      this.deadline(options),
    );
    return visitRangeResponse(response, visit);
  }

  async put(
    request: MessageInitShape<typeof PutRequestSchema>,
    options?: EtcdCallOptions,
  ): Promise<PutResponse> {
    const deadline = this.deadline(options);
    const c = await this.loadCodec();
    const body = c.toBinary(c.PutRequestSchema, c.create(c.PutRequestSchema, request));
    return c.fromBinary(c.PutResponseSchema, await this.call(`${KV}Put`, body, deadline));
  }

  async deleteRange(
    request: MessageInitShape<typeof DeleteRangeRequestSchema>,
    options?: EtcdCallOptions,
  ): Promise<DeleteRangeResponse> {
    const deadline = this.deadline(options);
    const c = await this.loadCodec();
    const body = c.toBinary(
      c.DeleteRangeRequestSchema,
      c.create(c.DeleteRangeRequestSchema, request),
    );
    return c.fromBinary(
      c.DeleteRangeResponseSchema,
      await this.call(`${KV}DeleteRange`, body, deadline),
    );
  }

  async txn(
    request: MessageInitShape<typeof TxnRequestSchema>,
    options?: EtcdCallOptions,
  ): Promise<TxnResponse> {
    const deadline = this.deadline(options);
    const c = await this.loadCodec();
    const body = c.toBinary(c.TxnRequestSchema, c.create(c.TxnRequestSchema, request));
    return c.fromBinary(c.TxnResponseSchema, await this.call(`${KV}Txn`, body, deadline));
  }

  async leaseGrant(ttlSeconds: number, options?: EtcdCallOptions): Promise<LeaseGrantResponse> {
    const deadline = this.deadline(options);
    const c = await this.loadCodec();
    const body = c.toBinary(
      c.LeaseGrantRequestSchema,
      c.create(c.LeaseGrantRequestSchema, { TTL: BigInt(ttlSeconds) }),
    );
    const response = c.fromBinary(
      c.LeaseGrantResponseSchema,
      await this.call(`${LEASE}LeaseGrant`, body, deadline),
    );
    if (response.error) throw new GrpcError(GrpcCode.UNKNOWN, response.error);
    return response;
  }

  /** Revokes a lease; etcd answers NOT_FOUND for a lease it does not know. */
  async leaseRevoke(id: bigint, options?: EtcdCallOptions): Promise<void> {
    const deadline = this.deadline(options);
    const c = await this.loadCodec();
    const body = c.toBinary(
      c.LeaseRevokeRequestSchema,
      c.create(c.LeaseRevokeRequestSchema, { ID: id }),
    );
    await this.call(`${LEASE}LeaseRevoke`, body, deadline);
  }

  /**
   * One keepalive on a short-lived stream; resolves to the remaining TTL in
   * seconds (0: etcd no longer knows the lease).
   */
  async leaseKeepAliveOnce(id: bigint, options?: EtcdCallOptions): Promise<bigint> {
    const deadline = this.deadline(options);
    const c = await this.loadCodec();
    const request = c.toBinary(
      c.LeaseKeepAliveRequestSchema,
      c.create(c.LeaseKeepAliveRequestSchema, { ID: id }),
    );
    const once = async (metadata: Record<string, string>): Promise<bigint> => {
      let stream: BidiStream | undefined;
      let timer: NodeJS.Timeout | undefined;
      try {
        return await new Promise<bigint>((resolve, reject) => {
          timer = setTimeout(
            () => {
              reject(
                new GrpcError(
                  GrpcCode.DEADLINE_EXCEEDED,
                  "no keepalive answer before the deadline",
                ),
              );
            },
            Math.max(0, deadline - Date.now()),
          );
          this.channel
            .stream(
              `${LEASE}LeaseKeepAlive`,
              { deadline, metadata },
              {
                onMessage: (message) => {
                  resolve(c.fromBinary(c.LeaseKeepAliveResponseSchema, message).TTL);
                },
                onEnd: (error) => {
                  reject(
                    error ??
                      new GrpcError(
                        GrpcCode.UNAVAILABLE,
                        "the keepalive stream ended without an answer",
                      ),
                  );
                },
              },
            )
            .then((opened) => {
              stream = opened;
              opened.send(request);
            }, reject);
        });
      } finally {
        clearTimeout(timer);
        // Half-close: the server ends the call once it has answered.
        stream?.halfClose();
      }
    };
    try {
      return await once(await this.metadata(deadline));
    } catch (err) {
      if (!isInvalidToken(err)) throw err;
      return once(await this.metadata(deadline, true));
    }
  }

  /**
   * Watches a key or range. A lost stream is made again (with backoff) from
   * the revision after the last one delivered; a watch etcd cancels ends.
   */
  watch(params: WatchParams, handlers: WatchHandlers): EtcdWatcher {
    let nextRevision = params.startRevision ?? 0n;
    let stopped = false;
    let current: BidiStream | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    let backoff = REWATCH_MIN_MS;
    let renewToken = false;
    // A function, not the variable: the callbacks change it across awaits.
    const isStopped = (): boolean => stopped;

    const retry = (error: GrpcError): void => {
      if (stopped || this.channel.isClosed) return;
      if (isInvalidToken(error)) renewToken = true;
      handlers.onDisconnected?.(error);
      retryTimer = setTimeout(() => {
        void open();
      }, backoff);
      backoff = Math.min(backoff * 2, REWATCH_MAX_MS);
    };

    const open = async (): Promise<void> => {
      if (stopped) return;
      const deadline = this.deadline();
      let c: Codec;
      let stream: BidiStream;
      try {
        c = await this.loadCodec();
        const metadata = await this.metadata(deadline, renewToken);
        renewToken = false;
        let ended = false;
        stream = await this.channel.stream(
          "/etcdserverpb.Watch/Watch",
          { deadline, metadata },
          {
            onMessage: (message) => {
              if (stopped || ended) return;
              const response = decodeWatchResponse(message);
              const revision = response.revision;
              if (response.canceled) {
                ended = true;
                stopped = true;
                stream.cancel();
                const reason =
                  response.cancelReason ||
                  (response.compactRevision > 0n
                    ? `mvcc: required revision ${nextRevision} has been compacted (compacted up to ${response.compactRevision})`
                    : "etcd cancelled the watch");
                const code =
                  response.compactRevision > 0n
                    ? GrpcCode.OUT_OF_RANGE
                    : GrpcCode.FAILED_PRECONDITION;
                handlers.onCanceled(new GrpcError(code, reason), response.compactRevision);
                return;
              }
              if (response.created) {
                backoff = REWATCH_MIN_MS;
                if (nextRevision === 0n) nextRevision = revision + 1n;
                handlers.onConnected?.();
              }
              const events = response.changes;
              const last = events.at(-1)?.modRevision;
              if (last !== undefined) {
                nextRevision = last + 1n;
              } else if (!response.created && revision + 1n > nextRevision) {
                // A progress notification: nothing before `revision` is pending.
                nextRevision = revision + 1n;
              }
              if (events.length > 0) handlers.onEvents(events);
            },
            onEnd: (error) => {
              if (ended) return;
              ended = true;
              if (current === stream) current = undefined;
              retry(error ?? new GrpcError(GrpcCode.UNAVAILABLE, "etcd ended the watch stream"));
            },
          },
        );
      } catch (err) {
        retry(
          err instanceof GrpcError
            ? err
            : new GrpcError(GrpcCode.UNKNOWN, String(err), { cause: err }),
        );
        return;
      }
      if (isStopped()) {
        stream.cancel();
        return;
      }
      current = stream;
      stream.send(
        c.toBinary(
          c.WatchRequestSchema,
          c.create(c.WatchRequestSchema, {
            requestUnion: {
              case: "createRequest",
              value: {
                key: params.key,
                rangeEnd: params.rangeEnd ?? new Uint8Array(),
                startRevision: nextRevision,
              },
            },
          }),
        ),
      );
    };

    void open();
    return {
      cancel: () => {
        if (stopped && !current) return;
        stopped = true;
        clearTimeout(retryTimer);
        const stream = current;
        current = undefined;
        stream?.cancel();
      },
    };
  }

  // ---------------------------------------------------------------- auth
  // The Auth service's administration calls (etcd 3.4), for `ogygia fleet
  // grant`: each one request, under the client's token (the admin's).

  private async authCall(
    method: string,
    build: (c: Codec) => Uint8Array,
    options?: EtcdCallOptions,
  ): Promise<{ c: Codec; response: Buffer }> {
    const deadline = this.deadline(options);
    const c = await this.loadCodec();
    const response = await this.call(`/etcdserverpb.Auth/${method}`, build(c), deadline);
    return { c, response };
  }

  /** Turns authentication on (a `root` user with the `root` role must exist). */
  async authEnable(options?: EtcdCallOptions): Promise<void> {
    await this.authCall(
      "AuthEnable",
      (c) => c.toBinary(c.AuthEnableRequestSchema, c.create(c.AuthEnableRequestSchema)),
      options,
    );
  }

  async userAdd(name: string, password: string, options?: EtcdCallOptions): Promise<void> {
    await this.authCall(
      "UserAdd",
      (c) =>
        c.toBinary(
          c.AuthUserAddRequestSchema,
          c.create(c.AuthUserAddRequestSchema, { name, password }),
        ),
      options,
    );
  }

  async userChangePassword(
    name: string,
    password: string,
    options?: EtcdCallOptions,
  ): Promise<void> {
    await this.authCall(
      "UserChangePassword",
      (c) =>
        c.toBinary(
          c.AuthUserChangePasswordRequestSchema,
          c.create(c.AuthUserChangePasswordRequestSchema, { name, password }),
        ),
      options,
    );
  }

  async userDelete(name: string, options?: EtcdCallOptions): Promise<void> {
    await this.authCall(
      "UserDelete",
      (c) =>
        c.toBinary(
          c.AuthUserDeleteRequestSchema,
          c.create(c.AuthUserDeleteRequestSchema, { name }),
        ),
      options,
    );
  }

  /** The roles of a user. */
  async userGet(name: string, options?: EtcdCallOptions): Promise<string[]> {
    const { c, response } = await this.authCall(
      "UserGet",
      (c) => c.toBinary(c.AuthUserGetRequestSchema, c.create(c.AuthUserGetRequestSchema, { name })),
      options,
    );
    return c.fromBinary(c.AuthUserGetResponseSchema, response).roles;
  }

  async userList(options?: EtcdCallOptions): Promise<string[]> {
    const { c, response } = await this.authCall(
      "UserList",
      (c) => c.toBinary(c.AuthUserListRequestSchema, c.create(c.AuthUserListRequestSchema)),
      options,
    );
    return c.fromBinary(c.AuthUserListResponseSchema, response).users;
  }

  async userGrantRole(user: string, role: string, options?: EtcdCallOptions): Promise<void> {
    await this.authCall(
      "UserGrantRole",
      (c) =>
        c.toBinary(
          c.AuthUserGrantRoleRequestSchema,
          c.create(c.AuthUserGrantRoleRequestSchema, { user, role }),
        ),
      options,
    );
  }

  async roleAdd(name: string, options?: EtcdCallOptions): Promise<void> {
    await this.authCall(
      "RoleAdd",
      (c) => c.toBinary(c.AuthRoleAddRequestSchema, c.create(c.AuthRoleAddRequestSchema, { name })),
      options,
    );
  }

  async roleDelete(role: string, options?: EtcdCallOptions): Promise<void> {
    await this.authCall(
      "RoleDelete",
      (c) =>
        c.toBinary(
          c.AuthRoleDeleteRequestSchema,
          c.create(c.AuthRoleDeleteRequestSchema, { role }),
        ),
      options,
    );
  }

  /** Grants `role` read, write or both on the keys in [key, rangeEnd). */
  async roleGrantPermission(
    name: string,
    permission: { type: PermissionType; key: Uint8Array; rangeEnd: Uint8Array },
    options?: EtcdCallOptions,
  ): Promise<void> {
    await this.authCall(
      "RoleGrantPermission",
      (c) =>
        c.toBinary(
          c.AuthRoleGrantPermissionRequestSchema,
          c.create(c.AuthRoleGrantPermissionRequestSchema, {
            name,
            perm: {
              permType: PERMISSION_TYPES[permission.type],
              key: permission.key,
              rangeEnd: permission.rangeEnd,
            },
          }),
        ),
      options,
    );
  }

  /** Closes the connection; calls in flight fail, watches stop. */
  close(): void {
    this.channel.close();
  }
}

/** The end of the range holding every key that starts with `prefix` (etcd's `--prefix`). */
export function prefixRangeEnd(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    const byte = end[i] ?? 0;
    if (byte < 0xff) {
      end[i] = byte + 1;
      return end.subarray(0, i + 1);
    }
  }
  // Every byte is 0xff: the range runs to the end of the keyspace.
  return new Uint8Array([0]);
}

/* eslint-disable @typescript-eslint/no-unsafe-enum-assignment --
   The generated enums' values (rpc.proto, kv.proto), for callers that build
   or read messages without loading the generated module; `client.test.ts`
   checks them against it. */
/** `Compare.CompareTarget` values. */
export const CompareTarget = {
  Version: 0 as Compare_CompareTarget,
  Create: 1 as Compare_CompareTarget,
  Mod: 2 as Compare_CompareTarget,
  Lease: 4 as Compare_CompareTarget,
} as const;
/** `authpb.Permission.Type` values, by the names `roleGrantPermission` takes. */
const PERMISSION_TYPES = {
  read: 0 as Permission_Type,
  write: 1 as Permission_Type,
  readwrite: 2 as Permission_Type,
} as const;
/** `Compare.CompareResult` values. */
export const CompareResult = { Equal: 0 as Compare_CompareResult } as const;
/* eslint-enable @typescript-eslint/no-unsafe-enum-assignment */
