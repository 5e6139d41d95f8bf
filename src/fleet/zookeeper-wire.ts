/**
 * Bulk reads over ZooKeeper's own wire protocol: a connection of its own
 * that sends `multiRead` (ZooKeeper 3.6+, opcode 22), many `getChildren`
 * and `getData` in one request.
 *
 * Why not `node-zookeeper-client`: it cannot send `multiRead` (its
 * connection destroys the socket on an answer to an opcode it does not
 * know), and one request per node costs the server most of a read of a
 * large namespace: 40,000 single reads took 3-5 s here, the same nodes in
 * 200 `multiRead`s 0.6 s. This module is read-only and short-lived: no
 * watches, no pings, no reconnection; the fleet backend reads a namespace
 * and closes it. Every call has a deadline, a call that misses it or a
 * broken answer ends the connection, and every call in flight then fails
 * at once, as with `ZkSession`.
 */

import net from "node:net";

import { DeadlineError } from "./errors.js";
import { ZK_CODES, ZkServerError, ZkSessionLostError } from "./zookeeper-errors.js";

const OP_GET_DATA = 4;
const OP_GET_CHILDREN = 8;
const OP_CLOSE_SESSION = -11;
const OP_MULTI_READ = 22;
const OP_ERROR = -1;
const XID_NOTIFICATION = -1;
const XID_PING = -2;

/** Largest request sent: ZooKeeper refuses more than `jute.maxbuffer` (1 MiB by default). */
const MAX_REQUEST_BYTES = 512 * 1024;
/** Largest answer accepted; a node holds at most 1 MiB, and a batch's answer is far below this. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** Pause between rounds over the endpoints while none accepts a connection. */
const RETRY_DELAY_MS = 200;
/** No endpoint gets less than this to connect, however many there are. */
const MIN_CONNECT_MS = 250;
/** How long a closed connection waits for the server's goodbye before its socket is dropped. */
const CLOSE_GRACE_MS = 1000;
/** The bytes of a `Stat`: 6 longs and 5 ints (3 + 2). */
const STAT_BYTES = 6 * 8 + 5 * 4;

/** A broken or unexpected answer: the connection cannot be trusted any more. */
class ZkProtocolError extends Error {
  constructor(message: string) {
    super(`ZooKeeper protocol error: ${message}`);
    this.name = "ZkProtocolError";
  }
}

/** True when the server does not know `multiRead` (ZooKeeper before 3.6). */
export function isMultiReadUnsupported(err: unknown): boolean {
  return err instanceof ZkServerError && err.code === ZK_CODES.UNIMPLEMENTED;
}

// ---- encoding (jute: big-endian ints and longs, length-prefixed strings) ----

/** One `multiRead` request of `type` ops (all `getChildren` or all `getData`) on `paths`. */
export function encodeMultiRead(xid: number, type: number, paths: readonly string[]): Buffer {
  // frame length, xid, opcode; per op: MultiHeader (int, bool, int), path, watch; end header.
  let size = 4 + 4 + 4 + 9;
  for (const path of paths) size += 9 + 4 + Buffer.byteLength(path) + 1;
  const buf = Buffer.allocUnsafe(size);
  let at = buf.writeInt32BE(size - 4, 0);
  at = buf.writeInt32BE(xid, at);
  at = buf.writeInt32BE(OP_MULTI_READ, at);
  for (const path of paths) {
    at = buf.writeInt32BE(type, at);
    at = buf.writeUInt8(0, at); // done: false
    at = buf.writeInt32BE(-1, at); // err
    const length = buf.write(path, at + 4);
    at = buf.writeInt32BE(length, at) + length;
    at = buf.writeUInt8(0, at); // watch: false
  }
  at = buf.writeInt32BE(-1, at);
  at = buf.writeUInt8(1, at); // done: true
  buf.writeInt32BE(-1, at);
  return buf;
}

function encodeConnect(sessionTimeoutMs: number): Buffer {
  // protocolVersion, lastZxidSeen, timeOut, sessionId, passwd (16 zero bytes), readOnly.
  const size = 4 + 4 + 8 + 4 + 8 + 4 + 16 + 1;
  const buf = Buffer.alloc(size);
  let at = buf.writeInt32BE(size - 4, 0);
  at = buf.writeInt32BE(0, at);
  at += 8;
  at = buf.writeInt32BE(sessionTimeoutMs, at);
  at += 8;
  buf.writeInt32BE(16, at);
  return buf;
}

function encodeHeaderOnly(xid: number, type: number): Buffer {
  const buf = Buffer.allocUnsafe(12);
  buf.writeInt32BE(8, 0);
  buf.writeInt32BE(xid, 4);
  buf.writeInt32BE(type, 8);
  return buf;
}

// ---- decoding, every length checked against what is left ----

class FrameReader {
  at = 0;
  constructor(private readonly buf: Buffer) {}

  private need(bytes: number): void {
    if (this.at + bytes > this.buf.length) throw new ZkProtocolError("answer cut short");
  }
  int(): number {
    this.need(4);
    const value = this.buf.readInt32BE(this.at);
    this.at += 4;
    return value;
  }
  bool(): boolean {
    this.need(1);
    return this.buf[this.at++] !== 0;
  }
  skip(bytes: number): void {
    this.need(bytes);
    this.at += bytes;
  }
  /** A length-prefixed byte string; jute writes a null one as length -1. */
  bytes(): Buffer | null {
    const length = this.int();
    if (length < 0) return null;
    this.need(length);
    const value = this.buf.subarray(this.at, this.at + length);
    this.at += length;
    return value;
  }
  string(): string {
    const length = this.int();
    if (length < 0) throw new ZkProtocolError("a null string");
    this.need(length);
    const value = this.buf.toString("utf8", this.at, this.at + length);
    this.at += length;
    return value;
  }
  get remaining(): number {
    return this.buf.length - this.at;
  }
}

/** What one op of a `multiRead` answered: its value, or null for a node that does not exist. */
export type MultiReadResult<T> = T | null;

/**
 * Decodes the body of a `multiRead` answer (after the reply header) whose
 * ops were all of `type`. A missing node reads as null; any other error of
 * an op throws.
 */
export function decodeMultiRead(
  body: Buffer,
  type: typeof OP_GET_CHILDREN,
  paths: readonly string[],
): (string[] | null)[];
export function decodeMultiRead(
  body: Buffer,
  type: typeof OP_GET_DATA,
  paths: readonly string[],
): (Buffer | null)[];
export function decodeMultiRead(
  body: Buffer,
  type: number,
  paths: readonly string[],
): (string[] | Buffer | null)[] {
  // A server before 3.6 may answer an unknown opcode with a bare header.
  if (body.length === 0) throw new ZkServerError(ZK_CODES.UNIMPLEMENTED);
  const reader = new FrameReader(body);
  const results: (string[] | Buffer | null)[] = [];
  for (;;) {
    const opType = reader.int();
    const done = reader.bool();
    reader.int(); // the header's err; an error op repeats it in its body
    if (done) break;
    const path = paths[results.length];
    if (path === undefined) throw new ZkProtocolError("more results than ops");
    if (opType === OP_ERROR) {
      const code = reader.int();
      if (code !== ZK_CODES.NO_NODE) throw new ZkServerError(code, path);
      results.push(null);
    } else if (opType !== type) {
      throw new ZkProtocolError(`result of opcode ${opType} for an op of opcode ${type}`);
    } else if (type === OP_GET_CHILDREN) {
      const count = reader.int();
      // Each name takes at least its 4-byte length.
      if (count < 0 || count * 4 > reader.remaining) throw new ZkProtocolError("bad child count");
      const children: string[] = new Array<string>(count);
      for (let i = 0; i < count; i++) children[i] = reader.string();
      results.push(children);
    } else {
      // A node created without data reads as empty, as `ZkSession.getData` gives it.
      const data = reader.bytes() ?? Buffer.alloc(0);
      reader.skip(STAT_BYTES);
      results.push(data);
    }
  }
  if (results.length !== paths.length) {
    throw new ZkProtocolError(`${results.length} results for ${paths.length} ops`);
  }
  return results;
}

/** Splits `paths` into runs whose `multiRead` request stays under `maxBytes`. */
export function splitByRequestSize(
  paths: readonly string[],
  maxBytes = MAX_REQUEST_BYTES,
): string[][] {
  const runs: string[][] = [];
  let run: string[] = [];
  let bytes = 0;
  for (const path of paths) {
    const cost = 14 + Buffer.byteLength(path);
    if (run.length > 0 && bytes + cost > maxBytes) {
      runs.push(run);
      run = [];
      bytes = 0;
    }
    run.push(path);
    bytes += cost;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** `host:port` or `[v6]:port`, as the configuration checked them. */
function parseEndpoint(endpoint: string): { host: string; port: number } {
  const colon = endpoint.lastIndexOf(":");
  let host = endpoint.slice(0, colon);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return { host, port: Number(endpoint.slice(colon + 1)) };
}

interface PendingCall {
  xid: number;
  resolve: (body: Buffer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** A read-only ZooKeeper connection that sends `multiRead`s, pipelined, each with a deadline. */
export class ZkWire {
  private readonly socket: net.Socket;
  private readonly timeoutMs: number;
  /** Calls in flight, in the order sent: ZooKeeper answers in that order. */
  private readonly pending: PendingCall[] = [];
  private nextXid = 1;
  private lost: string | undefined;
  /** Chunks of a frame not complete yet, and their total size. */
  private chunks: Buffer[] = [];
  private buffered = 0;

  private constructor(socket: net.Socket, timeoutMs: number, leftover: Buffer) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    socket.on("data", (chunk: Buffer) => {
      this.onData(chunk);
    });
    socket.on("error", (err) => {
      this.fail(`connection error: ${err.message}`);
    });
    socket.on("close", () => {
      this.fail("connection closed by the server");
    });
    if (leftover.length > 0) this.onData(leftover);
  }

  /**
   * Connects to one of `endpoints` and opens a session within `timeoutMs`,
   * trying each in turn (from a random one, to spread clients over an
   * ensemble) until one answers or the time is up.
   */
  static async connect(endpoints: readonly string[], timeoutMs: number): Promise<ZkWire> {
    const deadline = performance.now() + timeoutMs;
    const first = Math.floor(Math.random() * endpoints.length);
    const order = [...endpoints.slice(first), ...endpoints.slice(0, first)];
    let lastError: unknown;
    for (;;) {
      for (const [index, endpoint] of order.entries()) {
        const left = deadline - performance.now();
        if (left <= 0) break;
        // An even share of what is left for each endpoint still to try in
        // this round: a server that accepts and never answers must not
        // take the time of the healthy ones after it.
        const share = Math.min(left, Math.max(MIN_CONNECT_MS, left / (order.length - index)));
        try {
          const { socket, leftover } = await handshake(endpoint, share, Math.max(timeoutMs, 2000));
          return new ZkWire(socket, timeoutMs, leftover);
        } catch (err) {
          if (err instanceof ZkServerError) throw err;
          lastError = err;
        }
      }
      const left = deadline - performance.now();
      if (left <= 0) break;
      await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_DELAY_MS, left)));
    }
    throw lastError instanceof ZkSessionLostError ? lastError : new DeadlineError(timeoutMs);
  }

  /** True once the connection is lost or closed; every call then fails at once. */
  get isLost(): boolean {
    return this.lost !== undefined;
  }

  /** Children of each of `paths`, or null for a node that does not exist. */
  async getChildrenMany(paths: readonly string[]): Promise<(string[] | null)[]> {
    const runs = await Promise.all(
      splitByRequestSize(paths).map(async (run) =>
        decodeMultiRead(
          await this.send(encodeMultiRead(0, OP_GET_CHILDREN, run)),
          OP_GET_CHILDREN,
          run,
        ),
      ),
    );
    return runs.flat();
  }

  /** Data of each of `paths`, or null for a node that does not exist. */
  async getDataMany(paths: readonly string[]): Promise<(Buffer | null)[]> {
    const runs = await Promise.all(
      splitByRequestSize(paths).map(async (run) =>
        decodeMultiRead(await this.send(encodeMultiRead(0, OP_GET_DATA, run)), OP_GET_DATA, run),
      ),
    );
    return runs.flat();
  }

  /** Closes the session without waiting for the server's answer. */
  close(): void {
    if (this.lost === undefined && this.socket.writable) {
      this.socket.end(encodeHeaderOnly(this.nextXid++, OP_CLOSE_SESSION));
    }
    this.fail("closed");
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Sends one framed request (its xid is set here) and resolves with the answer's body. */
  private send(request: Buffer): Promise<Buffer> {
    if (this.lost !== undefined) return Promise.reject(new ZkSessionLostError(this.lost));
    const xid = this.nextXid++;
    request.writeInt32BE(xid, 4);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The answers after this one would wait behind it: end the connection.
        reject(new DeadlineError(this.timeoutMs));
        this.fail(`no answer within ${this.timeoutMs} ms`);
      }, this.timeoutMs);
      this.pending.push({ xid, resolve, reject, timer });
      this.socket.write(request);
    });
  }

  private fail(reason: string): void {
    if (this.lost !== undefined) return;
    this.lost = reason;
    const error = new ZkSessionLostError(reason);
    for (const call of this.pending.splice(0)) {
      clearTimeout(call.timer);
      call.reject(error);
    }
    this.chunks = [];
    this.buffered = 0;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered < 4) return;
    // One copy of the bytes not handled yet, however many frames they hold.
    const [only] = this.chunks;
    const buf = this.chunks.length === 1 && only ? only : Buffer.concat(this.chunks);
    let at = 0;
    while (buf.length - at >= 4) {
      const length = buf.readInt32BE(at);
      if (length < 16 || length > MAX_FRAME_BYTES) {
        this.fail(`an answer of ${length} bytes`);
        return;
      }
      if (buf.length - at - 4 < length) break;
      this.onFrame(buf.subarray(at + 4, at + 4 + length));
      if (this.lost !== undefined) return;
      at += 4 + length;
    }
    this.chunks = at < buf.length ? [buf.subarray(at)] : [];
    this.buffered = buf.length - at;
  }

  private onFrame(frame: Buffer): void {
    const xid = frame.readInt32BE(0);
    if (xid === XID_PING || xid === XID_NOTIFICATION) return;
    const call = this.pending[0];
    if (call?.xid !== xid) {
      this.fail(`an answer to request ${xid} out of order`);
      return;
    }
    this.pending.shift();
    clearTimeout(call.timer);
    const err = frame.readInt32BE(12);
    if (err !== 0) {
      call.reject(new ZkServerError(err));
      if (err === ZK_CODES.UNIMPLEMENTED) this.fail("the server does not know the request");
      return;
    }
    call.resolve(frame.subarray(16));
  }
}

/**
 * Opens a TCP connection to `endpoint` and a new session on it within
 * `timeoutMs`: the socket and any bytes that came after the server's answer.
 */
function handshake(
  endpoint: string,
  timeoutMs: number,
  sessionTimeoutMs: number,
): Promise<{ socket: net.Socket; leftover: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(parseEndpoint(endpoint));
    socket.setNoDelay(true);
    let received = Buffer.alloc(0);
    const finish = (err: Error | undefined): void => {
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.removeListener("error", onError);
      socket.removeListener("close", onClose);
      if (err) {
        socket.destroy();
        reject(err);
      }
    };
    const timer = setTimeout(() => {
      finish(new DeadlineError(timeoutMs));
    }, timeoutMs);
    const onError = (err: Error): void => {
      finish(new ZkSessionLostError(`cannot connect to ${endpoint}: ${err.message}`));
    };
    const onClose = (): void => {
      finish(new ZkSessionLostError(`${endpoint} closed the connection`));
    };
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 4) return;
      const length = received.readInt32BE(0);
      if (length < 0 || length > 1024) {
        finish(new ZkProtocolError(`a session answer of ${length} bytes from ${endpoint}`));
        return;
      }
      if (received.length < 4 + length) return;
      // ConnectResponse: protocolVersion, timeOut, sessionId, passwd, [readOnly].
      const negotiatedTimeout = length >= 8 ? received.readInt32BE(8) : 0;
      if (negotiatedTimeout <= 0) {
        finish(new ZkServerError(ZK_CODES.SESSION_EXPIRED));
        return;
      }
      finish(undefined);
      resolve({ socket, leftover: received.subarray(4 + length) });
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.once("connect", () => {
      socket.write(encodeConnect(sessionTimeoutMs));
    });
  });
}
