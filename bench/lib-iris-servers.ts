/**
 * The servers the irisd benchmark compares: nginx (Debian's package, the
 * reference static server) over the file tree `nix copy --to file://`
 * writes, started as a foreground process with a generated configuration
 * on a free loopback port; and a process's peak resident memory.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { canConnect, freePort, waitFor } from "../test/helpers/process.js";

/**
 * The environment nix/module.nix's unit gives ogygia-irisd (besides the
 * configuration): benchmarks run every irisd with it, as it is deployed.
 * `IRIS_BENCH_BEFORE_ENV=none` runs the `IRIS_BENCH_BEFORE` build without it
 * (as builds before the unit set it were deployed), and
 * `IRIS_BENCH_BEFORE_ENV='KEY=VALUE ...'` with that environment instead.
 */
export const IRISD_UNIT_ENV: Readonly<Record<string, string>> = {
  GLIBC_TUNABLES: "glibc.malloc.hugetlb=1",
};

/**
 * The environment to start the `IRIS_BENCH_BEFORE` build with: the unit's,
 * none (`none`), or `KEY=VALUE` pairs separated by spaces (the same build
 * with another setting: `IRIS_BENCH_BEFORE=<our dist>`).
 */
export function beforeBuildEnv(): Readonly<Record<string, string>> {
  const value = process.env.IRIS_BENCH_BEFORE_ENV;
  if (value === undefined || value === "") return IRISD_UNIT_ENV;
  if (value === "none") return {};
  const env: Record<string, string> = {};
  for (const pair of value.split(" ").filter((p) => p !== "")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`IRIS_BENCH_BEFORE_ENV: '${pair}' is not KEY=VALUE`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

export interface NginxServer {
  url: string;
  port: number;
  pids(): number[];
  stop(): Promise<void>;
}

/**
 * nginx serving `root` as static files. Settings follow what a binary-cache
 * operator would use: sendfile, keep-alive with no request limit, no access
 * log (irisd logs requests only at debug), workers as Debian's default
 * (`auto`: one per CPU) unless `workers` says how many.
 */
export async function startNginx(
  root: string,
  workDir: string,
  options: { workers?: number } = {},
): Promise<NginxServer> {
  const port = await freePort();
  await mkdir(path.join(workDir, "tmp"), { recursive: true });
  const conf = path.join(workDir, "nginx.conf");
  const tmp = path.join(workDir, "tmp");
  writeFileSync(
    conf,
    `daemon off;
worker_processes ${options.workers ?? "auto"};
${process.getuid?.() === 0 ? "user root root;" : ""}
pid ${path.join(workDir, "nginx.pid")};
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 10000000;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  types {
    text/x-nix-narinfo narinfo;
    application/x-nix-nar nar;
  }
  default_type text/plain;
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`,
  );
  const child: ChildProcess = spawn("nginx", ["-c", conf, "-p", workDir, "-e", "stderr"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      resolve();
    });
  });
  await waitFor(`nginx on port ${port}`, async () => {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    return (await canConnect(port)) ? true : undefined;
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pids: () => {
      const master = child.pid ?? -1;
      const children = readFileSync(`/proc/${master}/task/${master}/children`, "utf8")
        .trim()
        .split(/\s+/)
        .filter((p) => p !== "")
        .map(Number);
      return [master, ...children];
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGQUIT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Peak resident set size (VmHWM) of a process, in bytes. */
export function peakRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : NaN;
}

/** Current resident set size (VmRSS) of a process, in bytes. */
export function currentRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : NaN;
}

const FLOOR_SCRIPT = `
const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");
const body = Buffer.alloc(Number(process.argv[1]), 120);
const narDir = process.argv[2] ? path.join(process.argv[2], "nar") : undefined;
const SIZE = 1024 * 1024;
const pool = [];
function sendFile(res, file) {
  let fd;
  try {
    fd = fs.openSync(file, "r");
  } catch {
    res.writeHead(404, ["Content-Length", "0"]);
    res.end();
    return;
  }
  const size = fs.fstatSync(fd).size;
  res.writeHead(200, ["Content-Type", "application/x-nix-nar", "Content-Length", String(size)]);
  let pos = 0;
  const pump = () => {
    while (pos < size) {
      const buf = pool.pop() ?? Buffer.allocUnsafeSlow(SIZE);
      const n = fs.readSync(fd, buf, 0, Math.min(SIZE, size - pos), pos);
      pos += n;
      const more = res.write(n === SIZE ? buf : buf.subarray(0, n), () => pool.push(buf));
      if (!more) {
        res.once("drain", pump);
        return;
      }
    }
    fs.closeSync(fd);
    res.end();
  };
  pump();
}
const server = http.createServer({ keepAliveTimeout: 30000 }, (req, res) => {
  if (narDir !== undefined && req.url.startsWith("/nar/")) {
    sendFile(res, path.join(narDir, path.basename(req.url)));
    return;
  }
  res.writeHead(200, ["Content-Type", "text/x-nix-narinfo", "Content-Length", String(body.length)]);
  res.end(body);
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
`;

export interface FloorServer {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/**
 * The floor of any node:http server: a process answering every request with
 * a fixed body of `bodyBytes` (a typical narinfo), doing nothing else; with
 * `fileCache` (the tree `nix copy --to file://` writes), `/nar/<file>`
 * streams that NAR file as any Node server without `sendfile` must: read
 * into pooled 1 MiB buffers, written to the socket with backpressure.
 */
export function startNodeFloor(bodyBytes: number, fileCache?: string): Promise<FloorServer> {
  return startPortPrinter("the node:http floor server", [
    "-e",
    FLOOR_SCRIPT,
    String(bodyBytes),
    fileCache ?? "",
  ]);
}

/**
 * The first-pass floor (`bench/nar-dump-floor.ts`): a fresh node:http
 * process that dumps the NAR of a path of `storeDir` (its physical folder)
 * per `/nar/<hash part>...` request with the simplest walk, without
 * database, checks, hashing or cache. `nodeArgs` go before the script
 * (`--cpu-prof`).
 */
export function startNarDumpFloor(storeDir: string, nodeArgs: string[] = []): Promise<FloorServer> {
  const script = fileURLToPath(new URL("nar-dump-floor.js", import.meta.url));
  return startPortPrinter("the NAR dump floor server", [...nodeArgs, script, storeDir]);
}

/** A node process (`args` after node's path) that prints its port on stdout. */
async function startPortPrinter(what: string, args: string[]): Promise<FloorServer> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      resolve();
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once("data", (chunk: Buffer) => {
      resolve(Number(chunk.toString("utf8").trim()));
    });
    child.once("exit", (code) => {
      reject(new Error(`${what} exited (${code ?? "?"})`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid ?? -1,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** CPU time of every thread of `pids`, in nanoseconds (`/proc/<pid>/task/<tid>/schedstat`). */
export function processCpuNs(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // The thread ended between the listing and the read.
      }
    }
  }
  return total;
}
