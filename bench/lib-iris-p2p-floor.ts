/**
 * The floor for "a NAR through an intermediate process": a minimal HTTP
 * server forwarding every request to an irisd's peer endpoints
 * (`/nix-cache-info` as is, the rest under `/local/`) with undici, streaming
 * bodies through untouched: no verification, no cache, no lookups. Run as
 * its own process (like a daemon) with `UPSTREAM=http://...`; it prints
 * `{"port": N}` once listening, and `GET /.cpu` answers its CPU use.
 */

import http from "node:http";

import { Agent } from "undici";

const upstream = process.env.UPSTREAM ?? "";
const agent = new Agent({ pipelining: 1 });

const server = http.createServer((req, res) => {
  const target = req.url ?? "/";
  if (target === "/.cpu") {
    res.end(JSON.stringify(process.cpuUsage()));
    return;
  }
  const path = target === "/nix-cache-info" ? target : `/local${target}`;
  const head = req.method === "HEAD";
  agent
    .request({ origin: upstream, path, method: head ? "HEAD" : "GET" })
    .then(async (up) => {
      const length = up.headers["content-length"];
      res.writeHead(up.statusCode, typeof length === "string" ? { "content-length": length } : {});
      for await (const chunk of up.body as AsyncIterable<Buffer>) {
        if (!res.write(chunk)) await new Promise((resolve) => res.once("drain", resolve));
      }
      res.end();
    })
    .catch(() => {
      res.destroy();
    });
});

server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
