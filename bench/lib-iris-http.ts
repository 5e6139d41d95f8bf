/**
 * A minimal HTTP/1.1 client over one keep-alive connection, for timing
 * servers rather than clients: requests go out one at a time, responses are
 * parsed just enough (status, Content-Length) and bodies are counted, or
 * kept when asked. Its cost per request is the same whichever server
 * answers.
 */

import net from "node:net";

export interface SimpleResponse {
  status: number;
  /** Body bytes received. */
  length: number;
  /** The body, when `keepBody` was set. */
  body: Buffer | undefined;
}

interface Pending {
  keepBody: boolean;
  resolve: (response: SimpleResponse) => void;
  reject: (err: Error) => void;
}

const HEADER_END = Buffer.from("\r\n\r\n");

export class KeepAliveClient {
  private readonly socket: net.Socket;
  private readonly host: string;
  private pending: Pending | undefined;
  private head: Buffer = Buffer.alloc(0);
  private status = 0;
  private remaining = -1;
  private received = 0;
  private parts: Buffer[] = [];
  private failure: Error | undefined;

  private constructor(socket: net.Socket, host: string) {
    this.socket = socket;
    this.host = host;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.onData(chunk);
    });
    const fail = (err: Error): void => {
      this.failure = err;
      const pending = this.pending;
      this.pending = undefined;
      pending?.reject(err);
    };
    socket.on("error", fail);
    socket.on("close", () => {
      fail(new Error("the server closed the connection"));
    });
  }

  /** Connects to `host:port`. */
  static connect(host: string, port: number): Promise<KeepAliveClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new KeepAliveClient(socket, host));
      });
      socket.once("error", reject);
    });
  }

  /** GET `path`; resolves when the whole body arrived. */
  get(
    path: string,
    options: { keepBody?: boolean; method?: string } = {},
  ): Promise<SimpleResponse> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.pending !== undefined) throw new Error("KeepAliveClient: one request at a time");
    return new Promise((resolve, reject) => {
      this.pending = { keepBody: options.keepBody === true, resolve, reject };
      this.head = Buffer.alloc(0);
      this.remaining = -1;
      this.received = 0;
      this.parts = [];
      this.socket.write(
        `${options.method ?? "GET"} ${path} HTTP/1.1\r\nHost: ${this.host}\r\n\r\n`,
      );
    });
  }

  private onData(chunk: Buffer): void {
    const pending = this.pending;
    if (pending === undefined) return;
    let body = chunk;
    if (this.remaining < 0) {
      this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
      const end = this.head.indexOf(HEADER_END);
      if (end < 0) return;
      const text = this.head.subarray(0, end).toString("latin1");
      this.status = Number(text.slice(9, 12));
      const length = /\r\ncontent-length: *(\d+)/i.exec(text);
      this.remaining = length ? Number(length[1]) : 0;
      body = this.head.subarray(end + 4);
      this.head = Buffer.alloc(0);
    }
    if (body.length > 0) {
      this.received += body.length;
      this.remaining -= body.length;
      if (pending.keepBody) this.parts.push(body);
    }
    if (this.remaining <= 0) {
      if (this.remaining < 0) {
        pending.reject(new Error("more bytes than Content-Length (pipelining is not used)"));
      }
      this.pending = undefined;
      pending.resolve({
        status: this.status,
        length: this.received,
        body: pending.keepBody ? Buffer.concat(this.parts) : undefined,
      });
    }
  }

  close(): void {
    this.socket.removeAllListeners("close");
    this.socket.destroy();
  }
}
