import { writeFile } from "node:fs/promises";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { OgygiaError } from "../core/index.js";
import { loadConfig, parseConfig } from "./index.js";
import { tempDir } from "../../test/support/temp.js";

const FILE = "/etc/ogygia/config.toml";

async function configError(text: string): Promise<OgygiaError> {
  try {
    await parseConfig(text, FILE);
  } catch (err) {
    if (err instanceof OgygiaError) return err;
    throw err;
  }
  throw new Error("expected the configuration to be refused");
}

describe("parseConfig", () => {
  it("reads the reference example with its defaults filled in", async () => {
    const config = await parseConfig(
      [
        "[ogygia]",
        'domain = "example.com"',
        "",
        "[ogygia.etcd]",
        'endpoints = ["http://etcd1.internal:2379", "http://etcd2.internal:2379"]',
      ].join("\n"),
      FILE,
    );
    expect(config).toEqual({
      path: FILE,
      domain: "example.com",
      etcd: {
        endpoints: ["http://etcd1.internal:2379", "http://etcd2.internal:2379"],
        namespace: "/nixos/versions",
        timeoutSeconds: 10,
      },
      zookeeper: undefined,
      publish: { leaseTtlSeconds: 10, resyncIntervalSeconds: 300 },
      impact: { irisdUrl: "http://127.0.0.1:35742", concurrency: 32 },
      update: {
        stateDir: "/var/lib/ogygia/update",
        substituters: ["http://127.0.0.1:35742"],
        trustedPublicKeys: [],
        probes: [],
        httpProbes: [],
        checkUnits: true,
        healthDeadlineSeconds: 120,
        activationTimeoutSeconds: 600,
        pollIntervalSeconds: 1,
        reboot: "never",
        rebootWindow: "02:00-04:00",
        rebootCommand: ["systemctl", "reboot"],
      },
    });
  });

  it("reads [ogygia.impact] and refuses an irisd_url that is not http", async () => {
    const config = await parseConfig(
      '[ogygia.impact]\nirisd_url = "http://10.0.0.1:35742/"\nconcurrency = 4\n',
      FILE,
    );
    expect(config.impact).toEqual({ irisdUrl: "http://10.0.0.1:35742", concurrency: 4 });
    await expect(parseConfig('[ogygia.impact]\nirisd_url = "ftp://x"\n', FILE)).rejects.toThrow(
      /ogygia\.impact\.irisd_url/,
    );
  });

  it("reads the publisher's settings", async () => {
    const config = await parseConfig(
      [
        "[ogygia.etcd]",
        'endpoints = ["http://etcd1.internal:2379"]',
        "",
        "[ogygia.publish]",
        "lease_ttl_seconds = 3",
        "resync_interval_seconds = 60",
      ].join("\n"),
      FILE,
    );
    expect(config.publish).toEqual({ leaseTtlSeconds: 3, resyncIntervalSeconds: 60 });
  });

  it("refuses unknown and out-of-range publisher settings, naming key and line", async () => {
    const unknown = await configError("[ogygia.publish]\nlease_ttl = 5\n");
    expect(unknown.message).toContain(
      `${FILE}:2: ogygia.publish.lease_ttl: unknown key (known keys here: lease_ttl_seconds, resync_interval_seconds)`,
    );
    const short = await configError("[ogygia.publish]\nlease_ttl_seconds = 1\n");
    expect(short.message).toContain(
      `${FILE}:2: ogygia.publish.lease_ttl_seconds: must be from 2 to 3600, got 1`,
    );
    const type = await configError("[ogygia.publish]\nresync_interval_seconds = 1.5\n");
    expect(type.message).toContain(
      "ogygia.publish.resync_interval_seconds: expected an integer, got the float 1.5",
    );
  });

  it("reads a ZooKeeper section with every key set", async () => {
    const config = await parseConfig(
      [
        "[ogygia.zookeeper]",
        'endpoints = ["zk1.internal:2181", "[::1]:2182"]',
        'namespace = "/fleet/versions/"',
        "timeout_seconds = 3",
      ].join("\n"),
      FILE,
    );
    expect(config.zookeeper).toEqual({
      endpoints: ["zk1.internal:2181", "[::1]:2182"],
      namespace: "/fleet/versions",
      timeoutSeconds: 3,
    });
    expect(config.etcd).toBeUndefined();
    expect(config.domain).toBeUndefined();
  });

  it("accepts an empty file (no backend: local-only)", async () => {
    const config = await parseConfig("", FILE);
    expect(config.etcd).toBeUndefined();
    expect(config.zookeeper).toBeUndefined();
  });

  it("names the file, line and column of a TOML syntax error", async () => {
    const err = await configError('[ogygia]\ndomain = "example.com\n');
    expect(err.code).toBe("ERR_OGYGIA_CONFIG_PARSE");
    expect(err.message).toMatch(/^\/etc\/ogygia\/config\.toml:2:\d+: invalid TOML: /);
  });

  it("names an unknown key by its dotted path and line", async () => {
    const err = await configError('[ogygia.etcd]\nendpoints = ["http://a:2379"]\ntimeout = 5\n');
    expect(err.code).toBe("ERR_OGYGIA_CONFIG_INVALID");
    expect(err.message).toContain(`${FILE}:3: ogygia.etcd.timeout: unknown key`);
  });

  it("refuses an unknown top-level table", async () => {
    const err = await configError("[ogygai]\ndomain = 'x'\n");
    expect(err.message).toContain(`${FILE}:1: ogygai: unknown key`);
  });

  it("refuses a value of the wrong type, naming key and type", async () => {
    const err = await configError('[ogygia.etcd]\nendpoints = "http://a:2379"\n');
    expect(err.message).toContain(
      `${FILE}:2: ogygia.etcd.endpoints: expected an array of strings, got the string "http://a:2379"`,
    );
    const timeout = await configError(
      '[ogygia.etcd]\nendpoints = ["http://a:2379"]\ntimeout_seconds = "10"\n',
    );
    expect(timeout.message).toContain("ogygia.etcd.timeout_seconds: expected an integer");
  });

  it("refuses an empty endpoint list", async () => {
    const err = await configError("[ogygia.zookeeper]\nendpoints = []\n");
    expect(err.message).toContain(`${FILE}:2: ogygia.zookeeper.endpoints: must not be empty`);
  });

  it("requires endpoints when a backend section is present", async () => {
    const err = await configError('[ogygia.etcd]\nnamespace = "/x"\n');
    expect(err.message).toContain(`${FILE}:1: ogygia.etcd.endpoints: is required but missing`);
  });

  it("refuses malformed endpoints, naming the item", async () => {
    const etcd = await configError('[ogygia.etcd]\nendpoints = ["http://a:2379", "etcd2:2379"]\n');
    expect(etcd.message).toContain("ogygia.etcd.endpoints[1]");
    expect(etcd.message).toContain("must use http:// or https://");
    const zk = await configError('[ogygia.zookeeper]\nendpoints = ["http://zk:2181"]\n');
    expect(zk.message).toContain(
      'ogygia.zookeeper.endpoints[0]: "http://zk:2181" must be "host:port"',
    );
    const port = await configError('[ogygia.zookeeper]\nendpoints = ["zk:99999"]\n');
    expect(port.message).toContain('must be "host:port"');
  });

  it("refuses namespaces that are not absolute key prefixes", async () => {
    const relative = await configError(
      '[ogygia.etcd]\nendpoints = ["http://a:2379"]\nnamespace = "nixos"\n',
    );
    expect(relative.message).toContain('ogygia.etcd.namespace: must start with "/"');
    const root = await configError(
      '[ogygia.etcd]\nendpoints = ["http://a:2379"]\nnamespace = "/"\n',
    );
    expect(root.message).toContain("must name a prefix below the root");
  });

  it("refuses out-of-range timeouts", async () => {
    const err = await configError(
      '[ogygia.etcd]\nendpoints = ["http://a:2379"]\ntimeout_seconds = 0\n',
    );
    expect(err.message).toContain("ogygia.etcd.timeout_seconds: must be from 1 to 3600, got 0");
  });
});

describe("loadConfig", () => {
  it("returns undefined for a missing default file (local-only mode)", async () => {
    const dir = await tempDir("config");
    const file = path.join(dir, "config.toml");
    await expect(loadConfig({ path: file, displayPath: file, explicit: false })).resolves.toBe(
      undefined,
    );
  });

  it("fails for a missing file the user named explicitly", async () => {
    const dir = await tempDir("config");
    const file = path.join(dir, "config.toml");
    await expect(loadConfig({ path: file, displayPath: file, explicit: true })).rejects.toThrow(
      `configuration file ${file} does not exist`,
    );
  });

  it("fails for a directory in place of the file", async () => {
    const dir = await tempDir("config");
    await expect(loadConfig({ path: dir, displayPath: dir, explicit: false })).rejects.toThrow(
      "is a directory",
    );
  });

  it("reports errors with the displayed path, not the resolved one", async () => {
    const dir = await tempDir("config");
    const file = path.join(dir, "config.toml");
    await writeFile(file, "[ogygia]\nbogus = 1\n");
    await expect(
      loadConfig({
        path: file,
        displayPath: "/mnt/run/current-system/config.toml",
        explicit: false,
      }),
    ).rejects.toThrow("/mnt/run/current-system/config.toml:2: ogygia.bogus: unknown key");
  });
});
