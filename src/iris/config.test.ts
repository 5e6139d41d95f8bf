import { rm, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { OgygiaError } from "../core/index.js";
import { generateSecretKey, parseSecretKey, formatPublicKey } from "../nix/index.js";
import {
  DEFAULT_CONFIG_PATH,
  EXIT_CONFIG,
  irisdConfigSource,
  loadIrisdConfig,
  parseIrisdConfig,
  workerCount,
} from "./config.js";
import { tempDir } from "../../test/support/temp.js";

async function failure(text: string): Promise<OgygiaError> {
  try {
    await parseIrisdConfig(text, "/etc/irisd.toml");
  } catch (err) {
    if (err instanceof OgygiaError) return err;
    throw err;
  }
  throw new Error("expected the configuration to be refused");
}

const PUBLIC_KEY = formatPublicKey(parseSecretKey(generateSecretKey("cache-1")).publicKey);

describe("parseIrisdConfig", () => {
  it("fills every default from an empty file", async () => {
    const config = await parseIrisdConfig("", "/etc/irisd.toml");
    expect(config).toEqual({
      path: "/etc/irisd.toml",
      server: {
        listen: [{ host: "127.0.0.1", port: 35742, text: "127.0.0.1:35742" }],
        priority: 30,
        logLevel: "info",
        shutdownTimeoutSecs: 30,
        helperThreadNice: 19,
        workers: 1,
        compression: "none",
      },
      store: { root: "/", narMemoryCacheBytes: 64 * 1024 * 1024, logDir: undefined },
      signing: { secretKeyFiles: [] },
      peers: {
        urls: [],
        registry: false,
        ogygiaConfig: undefined,
        readAhead: true,
        readAheadNarBytes: 1024 * 1024,
      },
      trust: { trustedKeys: [] },
      cache: {
        dir: "/var/cache/ogygia-irisd",
        maxSizeBytes: 10 * 1024 ** 3,
        timeToIdleSecs: 604800,
      },
      bloom: { falsePositiveRate: 0.01, peerTtlSecs: 60 },
      limits: {
        connections: {
          maxConnections: 2048,
          headerTimeoutMs: 10_000,
          idleTimeoutMs: 30_000,
          writeTimeoutMs: 60_000,
          maxResponseBufferBytes: 8 * 1024 * 1024,
          maxBufferedBytesTotal: 256 * 1024 * 1024,
        },
        peerMinRate: { bytesPerSec: 4096, windowMs: 10_000 },
        cacheScrubIntervalMs: 7 * 86_400_000,
      },
    });
  });

  it("reads [limits]", async () => {
    const config = await parseIrisdConfig(
      "[limits]\nmax_connections = 10\nheader_timeout_secs = 2\nidle_timeout_secs = 3\n" +
        "write_timeout_secs = 4\nresponse_buffer_bytes = 65536\npeer_min_bytes_per_sec = 0\n" +
        "peer_rate_window_secs = 5\ncache_scrub_interval_secs = 0\n",
      "/etc/irisd.toml",
    );
    expect(config.limits).toEqual({
      connections: {
        maxConnections: 10,
        headerTimeoutMs: 2000,
        idleTimeoutMs: 3000,
        writeTimeoutMs: 4000,
        maxResponseBufferBytes: 65536,
        maxBufferedBytesTotal: 256 * 1024 * 1024,
      },
      peerMinRate: { bytesPerSec: 0, windowMs: 5000 },
      cacheScrubIntervalMs: 0,
    });
    await expect(parseIrisdConfig("[limits]\nmax_connections = 0\n", undefined)).rejects.toThrow(
      /limits\.max_connections/,
    );
  });

  it("reads every key", async () => {
    const config = await parseIrisdConfig(
      `
[server]
listen = ["10.0.0.1:35742", "[::1]:8080", "localhost:0", "unix:/run/ogygia/irisd.sock"]
priority = 10
log_level = "debug"
shutdown_timeout_secs = 5
helper_thread_nice = 10
workers = 3
compression = "zstd"

[store]
root = "/tmp/store"
nar_memory_cache_bytes = 0

[signing]
secret_key_files = ["/run/keys/cache.secret"]

[peers]
urls = ["http://10.0.0.2:35742", "https://peer.example"]
read_ahead = false
read_ahead_nar_bytes = 0

[trust]
trusted_keys = ["${PUBLIC_KEY}"]

[cache]
dir = "/var/cache/x"
max_size_bytes = 1000
time_to_idle_secs = 60

[bloom]
false_positive_rate = 0.001
peer_ttl_secs = 30
`,
      "/etc/irisd.toml",
    );
    expect(config.server).toEqual({
      listen: [
        { host: "10.0.0.1", port: 35742, text: "10.0.0.1:35742" },
        { host: "::1", port: 8080, text: "[::1]:8080" },
        { host: "localhost", port: 0, text: "localhost:0" },
        {
          host: "",
          port: 0,
          text: "unix:/run/ogygia/irisd.sock",
          socketPath: "/run/ogygia/irisd.sock",
        },
      ],
      advertise: "http://10.0.0.1:35742",
      priority: 10,
      logLevel: "debug",
      shutdownTimeoutSecs: 5,
      helperThreadNice: 10,
      workers: 3,
      compression: "zstd",
    });
    expect(config.store).toEqual({ root: "/tmp/store", narMemoryCacheBytes: 0 });
    expect(config.signing.secretKeyFiles).toEqual(["/run/keys/cache.secret"]);
    expect(config.peers).toEqual({
      urls: ["http://10.0.0.2:35742", "https://peer.example"],
      registry: false,
      ogygiaConfig: undefined,
      readAhead: false,
      readAheadNarBytes: 0,
    });
    expect(config.trust.trustedKeys).toEqual([PUBLIC_KEY]);
    expect(config.cache).toEqual({ dir: "/var/cache/x", maxSizeBytes: 1000, timeToIdleSecs: 60 });
    expect(config.bloom).toEqual({ falsePositiveRate: 0.001, peerTtlSecs: 30 });
  });

  it("names the file, line and column of a TOML syntax error", async () => {
    const err = await failure("[server]\nlisten = [\n");
    expect(err.code).toBe("ERR_OGYGIA_IRISD_CONFIG");
    expect(err.exitCode).toBe(EXIT_CONFIG);
    expect(err.message).toMatch(/^\/etc\/irisd\.toml:\d+:\d+: invalid TOML/);
  });

  it("names the file, line and dotted key of an unknown key", async () => {
    const err = await failure("[server]\npriority = 1\nlisten_on = []\n");
    expect(err.code).toBe("ERR_OGYGIA_IRISD_CONFIG");
    expect(err.exitCode).toBe(EXIT_CONFIG);
    expect(err.message).toContain("/etc/irisd.toml:3: server.listen_on: unknown key");
    expect(err.hint).toBeDefined();
  });

  it("refuses an unknown table", async () => {
    expect((await failure("[serveur]\n")).message).toContain("serveur: unknown key");
  });

  it.each([
    ['listen = ["35742"]', "server.listen[0]"],
    ['listen = ["127.0.0.1"]', "server.listen[0]"],
    ['listen = ["127.0.0.1:70000"]', "server.listen[0]"],
    ['listen = ["[nothex]:80"]', "server.listen[0]"],
    ['listen = ["[127.0.0.1]:80"]', "not an IPv6 address"],
    ["listen = []", "must not be empty"],
    ['listen = "127.0.0.1:1"', "expected an array of strings"],
    ['listen = ["127.0.0.1:1", "127.0.0.1:1"]', "is listed twice"],
    ['listen = ["unix:run/irisd.sock"]', "absolute path"],
    [`listen = ["unix:/${"x".repeat(120)}"]`, "too long"],
    ['listen = ["unix:/run/a.sock", "unix:/run/./a.sock"]', "is listed twice"],
    ["priority = -1", "server.priority: must be from 0"],
    ['priority = "high"', "expected an integer"],
    ['log_level = "loud"', "server.log_level: must be one of"],
    ['compression = "xz"', 'server.compression: must be one of "none", "zstd"'],
    ["compression = 1", "server.compression"],
    ["workers = 0", 'server.workers: must be from 1 to 64 or "auto", got 0'],
    ["workers = 65", 'server.workers: must be from 1 to 64 or "auto", got 65'],
    [
      "workers = 1.5",
      'server.workers: expected an integer from 1 to 64 or "auto", got the float 1.5',
    ],
    [
      'workers = "all"',
      'server.workers: expected an integer from 1 to 64 or "auto", got the string "all"',
    ],
    ["workers = true", "server.workers: expected an integer"],
  ])("refuses [server] %s", async (line, message) => {
    const err = await failure(`[server]\n${line}\n`);
    expect(err.message).toContain(message);
    expect(err.message).toMatch(/^\/etc\/irisd\.toml:2: /);
  });

  it.each([
    ['[store]\nroot = "relative/store"', "store.root"],
    ['[signing]\nsecret_key_files = ["key.secret"]', "signing.secret_key_files[0]"],
    ['[peers]\nurls = ["10.0.0.2:35742"]', "peers.urls[0]"],
    ['[peers]\nurls = ["ftp://10.0.0.2"]', "must use http:// or https://"],
    ['[trust]\ntrusted_keys = ["cache-1:abc"]', "trust.trusted_keys[0]"],
    ["[cache]\nmax_size_bytes = -5", "cache.max_size_bytes"],
    ["[cache]\ntime_to_idle_secs = 0", "cache.time_to_idle_secs"],
    ["[bloom]\nfalse_positive_rate = 0.9", "bloom.false_positive_rate"],
    ["[bloom]\nfalse_positive_rate = 0", "bloom.false_positive_rate"],
    ["[bloom]\npeer_ttl_secs = 0", "bloom.peer_ttl_secs"],
  ])("refuses %s", async (text, message) => {
    const err = await failure(`${text}\n`);
    expect(err.code).toBe("ERR_OGYGIA_IRISD_CONFIG");
    expect(err.message).toContain(message);
  });

  it('reads workers = "auto" as one worker per CPU, at most 64', async () => {
    const config = await parseIrisdConfig('[server]\nworkers = "auto"\n', "/etc/irisd.toml");
    expect(config.server.workers).toBe(workerCount("auto"));
    expect(workerCount("auto", 2)).toBe(2);
    expect(workerCount("auto", 1)).toBe(1);
    expect(workerCount("auto", 200)).toBe(64);
    expect(workerCount(5, 2)).toBe(5);
  });

  it("redacts credentials of a bad peer URL", async () => {
    const err = await failure('[peers]\nurls = ["ftp://user:secret@10.0.0.2"]\n');
    expect(err.message).not.toContain("secret");
  });

  it("refuses two different trusted keys with one name", async () => {
    const other = formatPublicKey(parseSecretKey(generateSecretKey("cache-1")).publicKey);
    const err = await failure(`[trust]\ntrusted_keys = ["${PUBLIC_KEY}", "${other}"]\n`);
    expect(err.message).toContain("two different keys are named 'cache-1'");
  });
});

describe("irisdConfigSource", () => {
  it("prefers --config, then the environment, then the default path", () => {
    expect(irisdConfigSource("/a.toml", { OGYGIA_IRISD_CONFIG: "/b.toml" })).toEqual({
      path: "/a.toml",
      from: "--config",
    });
    expect(irisdConfigSource(undefined, { OGYGIA_IRISD_CONFIG: "/b.toml" })).toEqual({
      path: "/b.toml",
      from: "$OGYGIA_IRISD_CONFIG",
    });
    expect(irisdConfigSource(undefined, { OGYGIA_IRISD_CONFIG: "" })).toEqual({
      path: DEFAULT_CONFIG_PATH,
      from: "default",
    });
  });
});

describe("loadIrisdConfig", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir("irisd-config");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads a file", async () => {
    const file = path.join(dir, "config.toml");
    await writeFile(file, "[server]\npriority = 7\n");
    const config = await loadIrisdConfig({ path: file, from: "--config" });
    expect(config.path).toBe(file);
    expect(config.server.priority).toBe(7);
  });

  it("uses the defaults when the default file is absent", async () => {
    const config = await loadIrisdConfig({ path: path.join(dir, "absent.toml"), from: "default" });
    expect(config.path).toBeUndefined();
    expect(config.server.priority).toBe(30);
  });

  it("refuses a named file that does not exist, saying where the name came from", async () => {
    const file = path.join(dir, "absent.toml");
    await expect(loadIrisdConfig({ path: file, from: "$OGYGIA_IRISD_CONFIG" })).rejects.toThrow(
      `configuration file ${file} (from $OGYGIA_IRISD_CONFIG) does not exist`,
    );
  });

  it("refuses a directory", async () => {
    await expect(loadIrisdConfig({ path: dir, from: "--config" })).rejects.toThrow(
      `cannot read configuration file ${dir}`,
    );
  });
});

describe("[server] advertise", () => {
  it("defaults to the first listen address another host can reach", async () => {
    const parse = async (listen: string[], advertise = ""): Promise<string | undefined> =>
      (
        await parseIrisdConfig(
          `[server]\nlisten = ${JSON.stringify(listen)}\nadvertise = ${JSON.stringify(advertise)}\n`,
          "/etc/irisd.toml",
        )
      ).server.advertise;
    expect(await parse(["127.0.0.1:35742"])).toBeUndefined();
    expect(await parse(["unix:/run/i.sock", "0.0.0.0:1", "[::1]:2", "10.1.2.3:0"])).toBeUndefined();
    expect(await parse(["127.0.0.1:1", "unix:/run/i.sock", "10.1.2.3:35742"])).toBe(
      "http://10.1.2.3:35742",
    );
    expect(await parse(["[fd00::5]:35742"])).toBe("http://[fd00::5]:35742");
    expect(await parse(["0.0.0.0:35742"], "http://host-a.lan:35742/")).toBe(
      "http://host-a.lan:35742",
    );
    await expect(parse(["0.0.0.0:1"], "ftp://x")).rejects.toThrow(/server\.advertise/);
  });
});
