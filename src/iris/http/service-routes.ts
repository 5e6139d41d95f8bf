/**
 * What monitoring and curious clients ask a running daemon:
 *
 * - `GET /health`: 200 once the daemon is ready (its local index built),
 *   503 with `Retry-After` before; JSON either way (`HealthAnswer`).
 * - `GET /version`: the version and the features served (`VersionAnswer`).
 */

import type { HealthAnswer, VersionAnswer } from "../index.js";
import { sendBody } from "./routes.js";
import { exactPath, type Route } from "./router.js";

const READ = ["GET", "HEAD"] as const;
const JSON_TYPE = "application/json";

function json(value: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value)}\n`, "utf8");
}

export interface ServiceRoutesOptions {
  version: string;
  features: readonly string[];
  /** True once the daemon serves everything it will (the local index is built). */
  ready(): boolean;
  /** Peers known now. */
  peerCount(): number;
  /** performance.now() at start (default: when the routes were made). */
  startedAt?: number;
}

/** `GET /health` and `GET /version`. */
export function serviceRoutes(options: ServiceRoutesOptions): Route[] {
  const startedAt = options.startedAt ?? performance.now();
  const version: VersionAnswer = {
    name: "ogygia-irisd",
    version: options.version,
    features: [...options.features],
  };
  const versionBody = json(version);
  return [
    {
      name: "health",
      methods: READ,
      match: exactPath("/health"),
      handle(req, res) {
        const ready = options.ready();
        const answer: HealthAnswer = {
          status: ready ? "ready" : "starting",
          indexReady: ready,
          peers: options.peerCount(),
          uptimeSecs: Math.floor((performance.now() - startedAt) / 1000),
        };
        if (!ready) res.setHeader("Retry-After", "1");
        res.setHeader("Cache-Control", "no-cache");
        return sendBody(req, res, ready ? 200 : 503, JSON_TYPE, json(answer));
      },
    },
    {
      name: "version",
      methods: READ,
      match: exactPath("/version"),
      handle: (req, res) => sendBody(req, res, 200, JSON_TYPE, versionBody),
    },
  ];
}
