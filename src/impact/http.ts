/**
 * The few GETs the impact commands make to the local ogygia-irisd: keep-alive
 * connections, at most `concurrency` requests in flight, a deadline each,
 * and a count of requests made (the benchmark reports it).
 */

import http from "node:http";
import https from "node:https";

import { OgygiaError, errorMessage, redactUrl } from "../core/index.js";

export interface IrisdClientOptions {
  /** Base URL, without a trailing slash. */
  baseUrl: string;
  /** Requests in flight at once (default 32). */
  concurrency?: number;
  /** Deadline of one request (default 30 s; irisd answers a miss within about 2 s). */
  timeoutMs?: number;
}

export interface HttpAnswer {
  status: number;
  body: Buffer;
}

/** A bounded, counted HTTP client for one irisd. */
export class IrisdClient {
  readonly baseUrl: string;
  /** Requests sent so far. */
  requests = 0;
  private readonly agent: http.Agent;
  private readonly module: typeof http | typeof https;
  private readonly timeoutMs: number;
  private readonly limit: number;
  private active = 0;
  /** Callers waiting for a slot: a queue with a head index (`shift` on a long array is linear). */
  private waiting: (() => void)[] = [];
  private waitingHead = 0;

  constructor(options: IrisdClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.limit = Math.max(1, options.concurrency ?? 32);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    const secure = this.baseUrl.startsWith("https:");
    this.module = secure ? https : http;
    this.agent = new (secure ? https.Agent : http.Agent)({
      keepAlive: true,
      maxSockets: this.limit,
    });
  }

  /** GETs `path` (relative to the base URL, no leading slash), at most `maxBytes` of body. */
  get(path: string, maxBytes: number): Promise<HttpAnswer> {
    return this.send(path, maxBytes, undefined);
  }

  /** POSTs a JSON `body` to `path`, at most `maxBytes` of answer. */
  postJson(path: string, body: unknown, maxBytes: number): Promise<HttpAnswer> {
    return this.send(path, maxBytes, Buffer.from(JSON.stringify(body), "utf8"));
  }

  private async send(
    path: string,
    maxBytes: number,
    body: Buffer | undefined,
  ): Promise<HttpAnswer> {
    if (this.active >= this.limit) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.active += 1;
    try {
      this.requests += 1;
      return await this.request(`${this.baseUrl}/${path}`, maxBytes, body);
    } finally {
      this.active -= 1;
      const next = this.waiting[this.waitingHead];
      if (next !== undefined) {
        this.waiting[this.waitingHead] = undefined as unknown as () => void;
        this.waitingHead += 1;
        if (this.waitingHead === this.waiting.length) {
          this.waiting = [];
          this.waitingHead = 0;
        }
        next();
      }
    }
  }

  private request(url: string, maxBytes: number, body: Buffer | undefined): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const fail = (reason: string, cause?: unknown): void => {
        reject(
          new OgygiaError(
            "ERR_OGYGIA_IMPACT_IRISD",
            `cannot read ${redactUrl(url)} from ogygia-irisd: ${reason}`,
            {
              hint: "Is ogygia-irisd running here? Set its URL with --irisd, $OGYGIA_IRISD_URL or [ogygia.impact] irisd_url.",
              cause,
            },
          ),
        );
      };
      const options: http.RequestOptions = {
        agent: this.agent,
        timeout: this.timeoutMs,
        method: body === undefined ? "GET" : "POST",
        headers:
          body === undefined
            ? {}
            : { "Content-Type": "application/json", "Content-Length": String(body.length) },
      };
      const req = this.module.request(url, options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            res.destroy();
            fail(`the answer is larger than ${maxBytes} bytes`);
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
        });
        res.on("error", (err) => {
          fail(errorMessage(err), err);
        });
      });
      req.on("timeout", () => {
        req.destroy(new Error(`no answer within ${this.timeoutMs} ms`));
      });
      req.on("error", (err) => {
        fail(errorMessage(err), err);
      });
      req.end(body);
    });
  }

  /** Closes idle connections. */
  close(): void {
    this.agent.destroy();
  }
}
