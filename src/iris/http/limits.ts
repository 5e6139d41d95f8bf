/**
 * The server's limits against clients that hold resources: a cap on open
 * connections (at the cap, the connection idle for longest is shed to make
 * room; with none idle, the new one is refused), and a write timeout with a
 * bound on what a response may hold in memory (a client that does not read
 * is paused by backpressure, then dropped once it took nothing for the
 * write timeout; a response whose buffered bytes pass the bound is dropped
 * at once; and when all responses together hold more than
 * `maxBufferedBytesTotal`, those stalled longest are dropped until they fit).
 * The header and idle timeouts are Node's own (`headersTimeout`,
 * `keepAliveTimeout`), set by the server from `ConnectionLimits`.
 *
 * Every cause is counted (`irisd_connections_shed_total{reason}`) and logged
 * once, then at most once a minute with the count since: never per request.
 */

import type http from "node:http";
import type { Socket } from "node:net";

import { Counter, Gauge, type Registry } from "prom-client";

import type { Logger } from "../../log/index.js";

/** The limits, all in milliseconds and bytes; see `[limits]` in the configuration. */
export interface ConnectionLimits {
  maxConnections: number;
  headerTimeoutMs: number;
  idleTimeoutMs: number;
  writeTimeoutMs: number;
  maxResponseBufferBytes: number;
  /** Bytes all responses together may hold waiting for their clients. */
  maxBufferedBytesTotal: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 2048,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  writeTimeoutMs: 60_000,
  maxResponseBufferBytes: 8 * 1024 * 1024,
  maxBufferedBytesTotal: 256 * 1024 * 1024,
};

/** Why a connection was closed or refused by a limit. */
export type ShedReason =
  "cap-idle" | "cap-refused" | "write-timeout" | "buffer" | "memory" | "header-timeout";

const MESSAGES: Record<ShedReason, string> = {
  "cap-idle": "connection cap reached: the connection idle for longest was closed",
  "cap-refused": "connection cap reached with no idle connection: a new connection was refused",
  "write-timeout": "a client read nothing for the write timeout: its connection was dropped",
  buffer: "a response held more than the per-response memory bound: its connection was dropped",
  memory:
    "responses held more than the memory bound for all of them: the most stalled were dropped",
  "header-timeout": "a client did not send its request headers in time: its connection was closed",
};

/** Repeats of one cause are logged at most this often (with their count). */
const REPEAT_LOG_MS = 60_000;

/** Logs each cause once, then at most once per `REPEAT_LOG_MS` with how many happened since. */
export function createCauseLog(log: Logger, now: () => number = Date.now) {
  const last = new Map<string, { at: number; since: number }>();
  return (cause: string, message: string, fields: Record<string, unknown> = {}): void => {
    const seen = last.get(cause);
    const t = now();
    if (seen !== undefined && t - seen.at < REPEAT_LOG_MS) {
      seen.since += 1;
      return;
    }
    last.set(cause, { at: t, since: 0 });
    log.warn(
      { cause, ...fields, ...(seen === undefined ? {} : { since: seen.since + 1 }) },
      message,
    );
  };
}

interface Tracked {
  /** Responses in flight on it. */
  active: number;
  /** When it last became idle, as a sequence number (larger: more recent). */
  idleSince: number;
  /** `bytesWritten` when last seen moving (-1: moved since the last sweep), and when. */
  written: number;
  movedAt: number;
}

/** Where a socket keeps its state: a property on the socket, no map lookup per request. */
const TRACKED = Symbol("tracked");
type TrackedSocket = Socket & { [TRACKED]?: Tracked };

/**
 * Tracks every connection of the servers it is attached to. Per request it
 * only counts (`onRequest`, `onResponseDone`: a property read and an
 * increment, no map, listener or closure); the orderings the limits need
 * are worked out when a limit is hit: the connection idle for longest
 * (no response in flight, including those still sending headers, and
 * nothing left in its socket's buffer) is searched for at the cap, and the
 * sweep looks at every connection's buffer.
 */
export class ConnectionGuard {
  private readonly open = new Set<TrackedSocket>();
  private readonly shed: Counter;
  private readonly note: ReturnType<typeof createCauseLog>;
  private readonly sweeper: NodeJS.Timeout;
  /** Orders connections by when they became idle. */
  private idleSeq = 0;

  constructor(
    private readonly limits: ConnectionLimits,
    log: Logger,
    registry: Registry,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.note = createCauseLog(log);
    this.shed = new Counter({
      name: "irisd_connections_shed_total",
      help: "Connections closed or refused by a limit, by reason.",
      labelNames: ["reason"],
      registers: [registry],
    });
    const open = this.open;
    new Gauge({
      name: "irisd_connections_open",
      help: "Client connections open.",
      registers: [registry],
      collect() {
        this.set(open.size);
      },
    });
    const every = Math.max(100, Math.min(1000, Math.floor(limits.writeTimeoutMs / 4)));
    this.sweeper = setInterval(() => {
      this.sweep();
    }, every);
    this.sweeper.unref();
  }

  /** Hooks the server's connections; the server reports each request's start and end. */
  attach(server: http.Server): void {
    server.headersTimeout = this.limits.headerTimeoutMs;
    // requestTimeout must not be below headersTimeout; it bounds receiving a whole request.
    server.requestTimeout = Math.max(this.limits.headerTimeoutMs, 60_000);
    server.keepAliveTimeout = this.limits.idleTimeoutMs;
    server.on("connection", (socket: Socket) => {
      this.onConnection(socket);
    });
  }

  /** A limit closed a connection, or the header timeout did (counted here, logged once). */
  count(reason: ShedReason, fields: Record<string, unknown> = {}): void {
    this.shed.inc({ reason }, 1);
    this.note(reason, MESSAGES[reason], fields);
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private onConnection(socket: TrackedSocket): void {
    if (this.open.size >= this.limits.maxConnections) {
      const oldest = this.idleLongest();
      if (oldest === undefined) {
        this.count("cap-refused", { maxConnections: this.limits.maxConnections });
        socket.destroy();
        return;
      }
      this.open.delete(oldest);
      oldest.destroy();
      this.count("cap-idle", { maxConnections: this.limits.maxConnections });
    }
    socket[TRACKED] = { active: 0, idleSince: ++this.idleSeq, written: 0, movedAt: this.now() };
    this.open.add(socket);
    socket.once("close", () => {
      this.open.delete(socket);
    });
  }

  /** The connection idle for longest with nothing left to send, if any. */
  private idleLongest(): TrackedSocket | undefined {
    let found: TrackedSocket | undefined;
    let since = Infinity;
    for (const socket of this.open) {
      const tracked = socket[TRACKED];
      if (tracked === undefined || tracked.active > 0 || socket.writableLength > 0) continue;
      if (tracked.idleSince < since) {
        since = tracked.idleSince;
        found = socket;
      }
    }
    return found;
  }

  /** A request began on `socket`: it is busy until `onResponseDone`. */
  onRequest(socket: Socket): void {
    const tracked = (socket as TrackedSocket)[TRACKED];
    if (tracked !== undefined) tracked.active += 1;
  }

  /** The request on `socket` was answered (or failed): once per `onRequest`. */
  onResponseDone(socket: Socket): void {
    const tracked = (socket as TrackedSocket)[TRACKED];
    if (tracked === undefined || tracked.active === 0) return;
    tracked.active -= 1;
    if (tracked.active === 0) tracked.idleSince = ++this.idleSeq;
  }

  /** Drops responses that took nothing for the write timeout, or hold too much. */
  private sweep(): void {
    const t = this.now();
    let total = 0;
    for (const socket of this.open) {
      const tracked = socket[TRACKED];
      if (tracked === undefined) continue;
      const buffered = socket.writableLength;
      if (buffered === 0) {
        tracked.written = -1;
        continue;
      }
      total += buffered;
      if (buffered > this.limits.maxResponseBufferBytes) {
        socket.destroy();
        this.count("buffer", { bufferedBytes: buffered, remote: socket.remoteAddress });
        continue;
      }
      const written = socket.bytesWritten;
      if (written !== tracked.written) {
        tracked.written = written;
        tracked.movedAt = t;
        continue;
      }
      if (t - tracked.movedAt >= this.limits.writeTimeoutMs) {
        socket.destroy();
        this.count("write-timeout", { remote: socket.remoteAddress });
      }
    }
    if (total > this.limits.maxBufferedBytesTotal) this.shedMemory(total);
  }

  /** Drops the responses stalled longest until what all of them hold fits the bound. */
  private shedMemory(total: number): void {
    const stalled = [...this.open]
      .filter((socket) => !socket.destroyed && socket.writableLength > 0)
      .map((socket): [Socket, number] => [socket, socket[TRACKED]?.movedAt ?? 0])
      .sort((a, b) => a[1] - b[1]);
    let held = total;
    let dropped = 0;
    for (const [socket] of stalled) {
      if (held <= this.limits.maxBufferedBytesTotal) break;
      held -= socket.writableLength;
      socket.destroy();
      dropped += 1;
      this.shed.inc({ reason: "memory" }, 1);
    }
    if (dropped > 0) {
      this.note("memory", MESSAGES.memory, {
        dropped,
        heldBytes: total,
        maxBufferedBytesTotal: this.limits.maxBufferedBytesTotal,
      });
    }
  }
}
