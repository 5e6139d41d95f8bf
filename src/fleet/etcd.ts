/**
 * The etcd adapter: the only module that imports `etcd3`. Reads the whole
 * namespace with one range request over its prefix.
 */

import { Etcd3, GRPCDeadlineExceededError, GRPCUnavailableError } from "etcd3";

import type { BackendConfig } from "../config/index.js";
import { OgygiaError } from "../core/index.js";
import { DeadlineError, connectError, readError, withDeadline } from "./errors.js";
import { namespacePrefix, snapshotFromPairs } from "./keys.js";
import type { FleetBackend, FleetSnapshot } from "./types.js";

/** Large namespaces (10,000+ hosts) exceed gRPC's default 4 MiB response limit. */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

function isConnectionFailure(err: unknown): boolean {
  return (
    err instanceof DeadlineError ||
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCDeadlineExceededError ||
    (err instanceof Error && /BrokenCircuitError|circuit/i.test(err.name + err.message))
  );
}

class EtcdBackend implements FleetBackend {
  readonly kind = "etcd" as const;
  readonly config: BackendConfig;
  private readonly client: Etcd3;
  private closed = false;

  constructor(config: BackendConfig) {
    this.config = config;
    const timeoutMs = config.timeoutSeconds * 1000;
    this.client = new Etcd3({
      hosts: config.endpoints,
      dialTimeout: timeoutMs,
      defaultCallOptions: (context) =>
        context.isStream ? {} : { deadline: Date.now() + timeoutMs },
      grpcOptions: {
        "grpc.max_receive_message_length": MAX_RESPONSE_BYTES,
      },
    });
  }

  async readHosts(): Promise<FleetSnapshot> {
    const prefix = namespacePrefix(this.config.namespace);
    try {
      const response = await withDeadline(
        this.client.getAll().prefix(prefix).exec(),
        this.config.timeoutSeconds * 1000,
      );
      return snapshotFromPairs(
        prefix,
        response.kvs.map((kv) => ({ key: kv.key.toString("utf8"), value: kv.value })),
      );
    } catch (err) {
      if (err instanceof OgygiaError) throw err;
      if (isConnectionFailure(err)) throw connectError("etcd", this.config, err);
      throw readError("etcd", this.config, err);
    }
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.client.close();
    }
    return Promise.resolve();
  }
}

/** Creates an etcd backend; connection happens on the first request. */
export function openEtcd(config: BackendConfig): FleetBackend {
  return new EtcdBackend(config);
}
