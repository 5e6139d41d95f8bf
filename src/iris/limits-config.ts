/**
 * `[limits]` of the daemon's configuration: what bounds irisd under abuse
 * (connections, timeouts, memory per response, the slowest peer accepted,
 * the NAR cache's scrub). Every key has a safe default.
 */

import { integer, table, type FieldType } from "../config/index.js";
import type { ConnectionLimits } from "./http/index.js";

export const limitsSchema = table({
  description: "Limits against clients and peers that hold resources.",
  fields: {
    max_connections: integer({
      description:
        "Client connections open at once. At the cap, the connection idle for longest " +
        "(no response in flight, or headers never finished) is closed to make room; with " +
        "none idle, the new connection is refused. Keep it below the process's file limit.",
      default: 2048,
      min: 1,
      max: 1_000_000,
    }),
    header_timeout_secs: integer({
      description: "Seconds a client has to send its request line and headers.",
      default: 10,
      min: 1,
      max: 3600,
    }),
    idle_timeout_secs: integer({
      description: "An idle keep-alive connection is closed after this many seconds.",
      default: 30,
      min: 1,
      max: 3600,
    }),
    write_timeout_secs: integer({
      description:
        "A response whose client takes no byte for this many seconds is dropped " +
        "(until then it is paused: nothing more is read for it).",
      default: 60,
      min: 1,
      max: 3600,
    }),
    response_buffer_bytes: integer({
      description:
        "Bytes one response may hold in memory waiting for its client; more, and the " +
        "connection is dropped (above the local store's 4 MiB of chunks in flight).",
      default: 8 * 1024 * 1024,
      min: 64 * 1024,
      max: 1024 ** 3,
    }),
    buffered_bytes_total: integer({
      description:
        "Bytes all responses together may hold waiting for their clients; more, and the " +
        "responses stalled longest are dropped until they fit.",
      default: 256 * 1024 * 1024,
      min: 1024 * 1024,
      max: 64 * 1024 ** 3,
    }),
    peer_min_bytes_per_sec: integer({
      description:
        "Slowest NAR transfer accepted from a peer, averaged over peer_rate_window_secs; a " +
        "slower peer is cut and the download continues from the next provider. 0: no minimum.",
      default: 4096,
      min: 0,
    }),
    peer_rate_window_secs: integer({
      description: "Window over which a peer's transfer rate is measured.",
      default: 10,
      min: 1,
      max: 600,
    }),
    cache_scrub_interval_secs: integer({
      description:
        "Every NAR cache entry is hashed again this often, and a bad one removed (entries " +
        "from before a restart are hashed on first use and soon after start whatever " +
        "this is). 0: no periodic scrub.",
      default: 7 * 86_400,
      min: 0,
    }),
  },
});

export interface IrisdLimits {
  connections: ConnectionLimits;
  peerMinRate: { bytesPerSec: number; windowMs: number };
  cacheScrubIntervalMs: number;
}

/** The validated `[limits]` in the units the daemon uses. */
export function limitsFrom(raw: FieldType<typeof limitsSchema>): IrisdLimits {
  return {
    connections: {
      maxConnections: raw.max_connections,
      headerTimeoutMs: raw.header_timeout_secs * 1000,
      idleTimeoutMs: raw.idle_timeout_secs * 1000,
      writeTimeoutMs: raw.write_timeout_secs * 1000,
      maxResponseBufferBytes: raw.response_buffer_bytes,
      maxBufferedBytesTotal: raw.buffered_bytes_total,
    },
    peerMinRate: {
      bytesPerSec: raw.peer_min_bytes_per_sec,
      windowMs: raw.peer_rate_window_secs * 1000,
    },
    cacheScrubIntervalMs: raw.cache_scrub_interval_secs * 1000,
  };
}
