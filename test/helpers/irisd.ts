/**
 * Runs the built daemon (`bin/ogygia-irisd`) as a real process for
 * integration tests and benchmarks: writes its TOML configuration in a
 * temporary folder, listens on 127.0.0.1 with a kernel-chosen port (read
 * back from the `listening` log line, so there is no port race), and keeps
 * its JSON log lines for assertions.
 */

import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { runCommand, type CliResult } from "./cli.js";
import { removeDir, startProcess, tempDir, waitFor, type ManagedProcess } from "./process.js";

/** The checkout: the nearest folder above this file with ogygia's package.json (from test/ or dist/test/). */
function repoRoot(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as {
        name?: string;
      };
      if (pkg.name === "ogygia") return dir;
    } catch {
      // Not here: keep walking up.
    }
    if (dir === path.dirname(dir)) throw new Error("cannot find the ogygia checkout");
  }
}

const ROOT = repoRoot();
export const IRISD_BIN = path.join(ROOT, "bin/ogygia-irisd");
const IRISD_BUNDLE = path.join(ROOT, "dist/bundle/ogygia-irisd.js");

export interface IrisdConfigOptions {
  /** `[store] root`: the physical root of the store served. */
  storeRoot: string;
  /** `[server] listen` (default `["127.0.0.1:0"]`). */
  listen?: string[];
  priority?: number;
  logLevel?: string;
  shutdownTimeoutSecs?: number;
  /** `[server] helper_thread_nice`. */
  helperThreadNice?: number;
  /** `[store] log_dir`. */
  logDir?: string;
  /** `[signing] secret_key_files`. */
  secretKeyFiles?: string[];
  /** `[peers] urls`. */
  peers?: string[];
  /** `[peers] registry` and `ogygia_config`: peers from the fleet registry. */
  registry?: { ogygiaConfig: string };
  /** `[server] compression`. */
  compression?: string;
  /** `[server] workers`. */
  workers?: number | string;
  /** `[server] advertise`. */
  advertise?: string;
  /** `[trust] trusted_keys` (`name:base64`). */
  trustedKeys?: string[];
  /** `[cache]`: the NAR cache of the peer-to-peer layer. */
  cache?: { dir: string; maxSizeBytes?: number; timeToIdleSecs?: number };
  /** `[bloom]`. */
  bloom?: { falsePositiveRate?: number; peerTtlSecs?: number };
  /** Appended to the generated file. */
  extraToml?: string;
}

export interface StartIrisdOptions extends IrisdConfigOptions {
  /** Extra environment (e.g. NOTIFY_SOCKET). */
  env?: Record<string, string | undefined>;
  /** How long to wait for `listening` (default 15 s). */
  timeoutMs?: number;
  /** Node options before the script (benchmarks: `--cpu-prof`). */
  nodeArgs?: string[];
  /** Another build's daemon script (benchmarks compare builds), default `bin/ogygia-irisd`. */
  script?: string;
}

/** One JSON log line of the daemon. */
export interface IrisdLogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface IrisdProcess {
  /** `http://127.0.0.1:<port>` of the first address. */
  url: string;
  urls: string[];
  port: number;
  pid: number;
  configFile: string;
  /** The JSON log lines so far. */
  logs(): IrisdLogLine[];
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Sends `signal` (default SIGTERM) and resolves with the exit code (SIGKILL after 10 s). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the exit code when the process exits. */
  exited: Promise<number | null>;
  process: ManagedProcess;
}

function tomlString(value: string): string {
  return JSON.stringify(value);
}

/** The configuration file text for `options`. */
export function irisdConfigText(options: IrisdConfigOptions): string {
  const lines = [
    "[server]",
    `listen = [${(options.listen ?? ["127.0.0.1:0"]).map(tomlString).join(", ")}]`,
  ];
  if (options.priority !== undefined) lines.push(`priority = ${options.priority}`);
  if (options.advertise !== undefined) lines.push(`advertise = ${tomlString(options.advertise)}`);
  lines.push(`log_level = ${tomlString(options.logLevel ?? "info")}`);
  if (options.shutdownTimeoutSecs !== undefined) {
    lines.push(`shutdown_timeout_secs = ${options.shutdownTimeoutSecs}`);
  }
  if (options.helperThreadNice !== undefined) {
    lines.push(`helper_thread_nice = ${options.helperThreadNice}`);
  }
  if (options.compression !== undefined) {
    lines.push(`compression = ${tomlString(options.compression)}`);
  }
  if (options.workers !== undefined) {
    lines.push(
      `workers = ${typeof options.workers === "string" ? tomlString(options.workers) : options.workers}`,
    );
  }
  lines.push("", "[store]", `root = ${tomlString(options.storeRoot)}`);
  if (options.logDir !== undefined) lines.push(`log_dir = ${tomlString(options.logDir)}`);
  if (options.secretKeyFiles !== undefined) {
    lines.push("", "[signing]");
    lines.push(`secret_key_files = [${options.secretKeyFiles.map(tomlString).join(", ")}]`);
  }
  if (options.peers !== undefined || options.registry !== undefined) {
    lines.push("", "[peers]", `urls = [${(options.peers ?? []).map(tomlString).join(", ")}]`);
    if (options.registry !== undefined) {
      lines.push("registry = true", `ogygia_config = ${tomlString(options.registry.ogygiaConfig)}`);
    }
  }
  if (options.trustedKeys !== undefined) {
    lines.push("", "[trust]", `trusted_keys = [${options.trustedKeys.map(tomlString).join(", ")}]`);
  }
  if (options.cache !== undefined) {
    lines.push("", "[cache]", `dir = ${tomlString(options.cache.dir)}`);
    if (options.cache.maxSizeBytes !== undefined) {
      lines.push(`max_size_bytes = ${options.cache.maxSizeBytes}`);
    }
    if (options.cache.timeToIdleSecs !== undefined) {
      lines.push(`time_to_idle_secs = ${options.cache.timeToIdleSecs}`);
    }
  }
  if (options.bloom !== undefined) {
    lines.push("", "[bloom]");
    if (options.bloom.falsePositiveRate !== undefined) {
      lines.push(`false_positive_rate = ${options.bloom.falsePositiveRate}`);
    }
    if (options.bloom.peerTtlSecs !== undefined) {
      lines.push(`peer_ttl_secs = ${options.bloom.peerTtlSecs}`);
    }
  }
  if (options.extraToml !== undefined) lines.push("", options.extraToml);
  return `${lines.join("\n")}\n`;
}

function parseLogs(output: string): IrisdLogLine[] {
  const lines: IrisdLogLine[] = [];
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const parsed = JSON.parse(line) as unknown;
      if (parsed !== null && typeof parsed === "object" && "msg" in parsed) {
        lines.push(parsed as IrisdLogLine);
      }
    } catch {
      // A line cut by the output window, or not ours.
    }
  }
  return lines;
}

const running = new Set<IrisdProcess>();
const configDirs = new Set<string>();

/** Writes a configuration file in a new temporary folder and returns its path. */
export async function writeIrisdConfig(text: string): Promise<string> {
  const dir = await tempDir("irisd-config");
  configDirs.add(dir);
  const file = path.join(dir, "config.toml");
  await writeFile(file, text);
  return file;
}

/**
 * Starts the daemon and waits until it listens. Throws with its output when
 * it exits first. Stop it with `stop()` or `stopAllIrisd()`.
 */
export async function startIrisd(options: StartIrisdOptions): Promise<IrisdProcess> {
  const script = options.script ?? IRISD_BIN;
  if (options.script === undefined && !existsSync(IRISD_BUNDLE)) {
    throw new Error(`${IRISD_BUNDLE} is missing: run npm run build first`);
  }
  const configFile = await writeIrisdConfig(irisdConfigText(options));
  const args = [...(options.nodeArgs ?? []), script, "--config", configFile];
  const proc = startProcess(process.execPath, args, {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: "C.UTF-8", ...options.env },
  });
  let exitCode: number | null | undefined;
  void proc.exited.then((code) => {
    exitCode = code;
  });
  let listening: IrisdLogLine;
  try {
    listening = await waitFor(
      "ogygia-irisd to listen",
      () => {
        if (exitCode !== undefined) {
          throw new Error(`ogygia-irisd exited with ${exitCode}:\n${proc.output()}`);
        }
        return parseLogs(proc.output()).find((l) => l.msg === "listening");
      },
      { timeoutMs: options.timeoutMs ?? 15_000, intervalMs: 20 },
    );
  } catch (err) {
    await proc.stop("SIGKILL");
    if (exitCode !== undefined) {
      throw new Error(`ogygia-irisd exited with ${exitCode} before listening:\n${proc.output()}`);
    }
    throw err;
  }
  const urls = listening.addresses as string[];
  const first = urls[0];
  if (first === undefined) throw new Error(`no address in ${JSON.stringify(listening)}`);
  const daemon: IrisdProcess = {
    url: first,
    urls,
    port: Number(new URL(first).port),
    pid: proc.child.pid ?? -1,
    configFile,
    logs: () => parseLogs(proc.output()),
    output: () => proc.output(),
    async stop(signal = "SIGTERM") {
      await proc.stop(signal);
      running.delete(daemon);
      return proc.exited;
    },
    exited: proc.exited,
    process: proc,
  };
  running.add(daemon);
  return daemon;
}

/** Stops every daemon started by `startIrisd` and removes their configuration folders. */
export async function stopAllIrisd(): Promise<void> {
  await Promise.all([...running].map((d) => d.stop("SIGKILL")));
  await Promise.all([...configDirs].map((dir) => removeDir(dir)));
  configDirs.clear();
}

/** Runs `ogygia-irisd <args>` to completion (for --help, --check-config, start-up failures). */
export function runIrisd(
  args: readonly string[],
  options: { env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): Promise<CliResult> {
  return runCommand(IRISD_BIN, args, options);
}

/** A response read in full. */
export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP request with node:http (which normalises nothing in the path it is given). */
export function httpRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; agent?: http.Agent | false } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: options.method ?? "GET",
      headers: options.headers,
      agent: options.agent,
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** What came back on a raw connection: the text before the body, and the body. */
export interface RawResult {
  /** 0 when nothing parseable came back. */
  status: number;
  head: string;
  body: Buffer;
}

/**
 * Sends `request` verbatim on a new connection and reads until the server
 * closes it: for requests an HTTP client would refuse or normalise.
 */
export function rawRequest(port: number, request: string | Buffer): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    const done = (): void => {
      const all = Buffer.concat(chunks);
      const end = all.indexOf("\r\n\r\n");
      const head = all.subarray(0, end < 0 ? all.length : end).toString("latin1");
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(head);
      resolve({
        status: status ? Number(status[1]) : 0,
        head,
        body: end < 0 ? Buffer.alloc(0) : all.subarray(end + 4),
      });
    };
    socket.on("close", done);
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNRESET" || err.code === "EPIPE") return;
      reject(err);
    });
    socket.write(request);
  });
}

/** Deterministic pseudo-random bytes (SHA-256 in counter mode): the same tree every run. */
export function patternBytes(size: number, seed: string): Buffer {
  const out = Buffer.allocUnsafe(size + 32);
  for (let offset = 0, i = 0; offset < size; offset += 32, i++) {
    createHash("sha256").update(`${seed}-${i}`).digest().copy(out, offset);
  }
  return out.subarray(0, size);
}

/**
 * Writes `files` files of `fileBytes` bytes each under `dir` (deterministic
 * content), for NARs large enough to stream for a while.
 */
export async function makeLargeTree(
  dir: string,
  options: { files: number; fileBytes: number; seed: string },
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const block = patternBytes(options.fileBytes, options.seed);
  for (let i = 0; i < options.files; i++) {
    // Each file differs in its first bytes, so no two are alike.
    const content = Buffer.concat([Buffer.from(`${i}\n`), block]);
    await writeFile(path.join(dir, `part-${String(i).padStart(3, "0")}`), content);
  }
}
