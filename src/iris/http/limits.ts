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
  /** `bytesWritten` when last seen moving, and when. */
  written: number;
  movedAt: number;
}

/**
 * Tracks every connection of the servers it is attached to. Idle ones
 * (no response in flight, including those still sending headers) are kept
 * in the order they became idle, so the first is the one idle for longest.
 */
export class ConnectionGuard {
  private readonly idle = new Map<Socket, Tracked>();
  private readonly busy = new Map<Socket, Tracked>();
  private readonly shed: Counter;
  private readonly note: ReturnType<typeof createCauseLog>;
  private readonly sweeper: NodeJS.Timeout;

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
    const open = (): number => this.idle.size + this.busy.size;
    new Gauge({
      name: "irisd_connections_open",
      help: "Client connections open.",
      registers: [registry],
      collect() {
        this.set(open());
      },
    });
    const every = Math.max(100, Math.min(1000, Math.floor(limits.writeTimeoutMs / 4)));
    this.sweeper = setInterval(() => {
      this.sweep();
    }, every);
    this.sweeper.unref();
  }

  /** Hooks the server's connections; the server hands each request to `onRequest`. */
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

  private onConnection(socket: Socket): void {
    if (this.idle.size + this.busy.size >= this.limits.maxConnections) {
      const oldest = this.idle.keys().next();
      if (oldest.done === true) {
        this.count("cap-refused", { maxConnections: this.limits.maxConnections });
        socket.destroy();
        return;
      }
      this.idle.delete(oldest.value);
      oldest.value.destroy();
      this.count("cap-idle", { maxConnections: this.limits.maxConnections });
    }
    this.idle.set(socket, { active: 0, written: 0, movedAt: this.now() });
    socket.once("close", () => {
      this.idle.delete(socket);
      this.busy.delete(socket);
    });
  }

  /** A request began on `socket`: it is busy until `res` closes. */
  onRequest(socket: Socket, res: http.ServerResponse): void {
    const tracked = this.idle.get(socket) ?? this.busy.get(socket);
    if (tracked === undefined) return;
    this.idle.delete(socket);
    if (tracked.active === 0) {
      tracked.written = socket.bytesWritten;
      tracked.movedAt = this.now();
    }
    tracked.active += 1;
    this.busy.set(socket, tracked);
    // `on`, not `once`: a response closes once, and `once` wraps the listener.
    res.on("close", () => {
      tracked.active -= 1;
      if (tracked.active > 0 || socket.destroyed || !this.busy.has(socket)) return;
      this.busy.delete(socket);
      // Last in the map: idle for the shortest time.
      this.idle.set(socket, tracked);
    });
  }

  /** Drops responses that took nothing for the write timeout, or hold too much. */
  private sweep(): void {
    const t = this.now();
    let total = 0;
    for (const [socket, tracked] of this.busy) {
      const buffered = socket.writableLength;
      total += buffered;
      if (buffered > this.limits.maxResponseBufferBytes) {
        socket.destroy();
        this.count("buffer", { bufferedBytes: buffered, remote: socket.remoteAddress });
        continue;
      }
      const written = socket.bytesWritten;
      if (buffered === 0 || written !== tracked.written) {
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
    const stalled = [...this.busy]
      .filter(([socket]) => !socket.destroyed && socket.writableLength > 0)
      .sort((a, b) => a[1].movedAt - b[1].movedAt);
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
