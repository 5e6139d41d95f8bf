/**
 * Build-time configuration checks, run as the NixOS module runs them:
 * `ogygia config check` on the CLI's file and `ogygia-irisd --check-config
 * --no-key-files` on the daemon's, as separate processes on files in a
 * temporary folder. Neither contacts a backend or needs a Nix store.
 */

import { writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { irisdConfigText, runIrisd } from "./helpers/irisd.js";
import { removeDir, tempDir } from "./helpers/process.js";

interface CheckJson {
  file: string;
  valid: boolean;
  backend: string | null;
  namespace: string | null;
  endpoints: string[];
}

let dir: string;
let count = 0;

beforeAll(async () => {
  dir = await tempDir("config-check");
});

afterAll(async () => {
  await removeDir(dir);
});

/** Writes `text` to a new file in the test folder and returns its path. */
async function configFile(text: string): Promise<string> {
  count += 1;
  const file = path.join(dir, `config-${count}.toml`);
  await writeFile(file, text);
  return file;
}

const ETCD_TOML = [
  "[ogygia.etcd]",
  'endpoints = ["http://etcd1.internal:2379", "http://etcd2.internal:2379", "http://etcd3.internal:2379"]',
  "",
].join("\n");

describe("ogygia config check", () => {
  it("accepts an etcd file and names the backend, endpoint count and namespace", async () => {
    const file = await configFile(ETCD_TOML);
    const result = await runCli(["config", "check", file]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `configuration ${file} is valid: etcd backend (3 endpoints, namespace /nixos/versions)\n`,
    );
  });

  it("accepts a ZooKeeper file with its own namespace", async () => {
    const file = await configFile(
      '[ogygia.zookeeper]\nendpoints = ["zk1.internal:2181", "zk2.internal:2181"]\nnamespace = "/fleet"\n',
    );
    const result = await runCli(["config", "check", file]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `configuration ${file} is valid: zookeeper backend (2 endpoints, namespace /fleet)\n`,
    );
  });

  it("accepts an empty file as local-only mode", async () => {
    const file = await configFile("");
    const result = await runCli(["config", "check", file]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `configuration ${file} is valid: no fleet backend: local-only mode\n`,
    );
  });

  it("prints JSON with --json, finding the file through $OGYGIA_CONFIG", async () => {
    const file = await configFile(
      `${ETCD_TOML}namespace = "/nixos/staging"\n\n[ogygia.zookeeper]\nendpoints = ["zk1.internal:2181"]\n`,
    );
    const result = await runCli(["config", "check", "--json"], { env: { OGYGIA_CONFIG: file } });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout) as CheckJson).toEqual({
      file,
      valid: true,
      backend: "etcd",
      namespace: "/nixos/staging",
      endpoints: [
        "http://etcd1.internal:2379",
        "http://etcd2.internal:2379",
        "http://etcd3.internal:2379",
      ],
    });
  });

  it("prefers the FILE argument over $OGYGIA_CONFIG", async () => {
    const file = await configFile("");
    const result = await runCli(["config", "check", "--json", file], {
      env: { OGYGIA_CONFIG: path.join(dir, "absent.toml") },
    });
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as CheckJson).backend).toBeNull();
  });

  it("refuses an unknown key with exit 1, naming the file, the line and the dotted key", async () => {
    const file = await configFile(
      '[ogygia]\ndomain = "example.com"\n\n[ogygia.etcd]\nendpoint = ["http://etcd1.internal:2379"]\n',
    );
    const result = await runCli(["config", "check", "--json", file]);
    expect(result.code).toBe(1);
    // With --json the error is also a JSON document on stdout (no report).
    expect(JSON.parse(result.stdout)).toMatchObject({
      error: { code: "ERR_OGYGIA_CONFIG_INVALID" },
    });
    expect(result.stderr).toContain(`error: ${file}:5: ogygia.etcd.endpoint: unknown key`);
  });

  it("refuses a missing file with exit 1, even though the other commands would not", async () => {
    const file = path.join(dir, "absent.toml");
    const result = await runCli(["config", "check", file]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(`configuration file ${file} does not exist`);
  });

  it("has help with examples, and is listed in the program's help", async () => {
    const help = await runCli(["config", "check", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: ogygia config check [options] [file]");
    expect(help.stdout).toContain("--json");
    expect(help.stdout).toContain("Examples:\n  ogygia config check\n");
    const program = await runCli(["--help"]);
    expect(program.code).toBe(0);
    expect(program.stdout).toMatch(/^ {2}config check {2,}validate/m);
  });

  it("refuses a second argument as a usage error", async () => {
    const result = await runCli(["config", "check", "a.toml", "b.toml"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unexpected argument 'b.toml'");
  });
});

describe("ogygia-irisd --check-config --no-key-files", () => {
  const absentKey = (): string => path.join(dir, "absent-signing-key-0");

  it("accepts a file whose signing key files do not exist", async () => {
    const file = await configFile(
      irisdConfigText({ storeRoot: path.join(dir, "store"), secretKeyFiles: [absentKey()] }),
    );
    const result = await runIrisd(["--check-config", "--no-key-files", "--config", file]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `ogygia-irisd: configuration ${file} is valid (key files not read)\n`,
    );
  });

  it("without --no-key-files, still reads the key files and names the missing one", async () => {
    const file = await configFile(
      irisdConfigText({ storeRoot: path.join(dir, "store"), secretKeyFiles: [absentKey()] }),
    );
    const result = await runIrisd(["--check-config", "--config", file]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(absentKey());
  });

  it("still refuses an unknown key with its dotted name and exit 78", async () => {
    const file = await configFile(
      `${irisdConfigText({ storeRoot: path.join(dir, "store") })}\n[signing]\nsecret_key_file = "x"\n`,
    );
    const result = await runIrisd(["--check-config", "--no-key-files", "--config", file]);
    expect(result.code).toBe(78);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("signing.secret_key_file");
    expect(result.stderr).toContain(file);
  });

  it("is a usage error (exit 2) without --check-config", async () => {
    const result = await runIrisd(["--no-key-files"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--no-key-files needs --check-config");
  });

  it("is described in --help", async () => {
    const result = await runIrisd(["--help"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("[--check-config] [--no-key-files]");
    expect(result.stdout).toMatch(/^ +--no-key-files +with --check-config/m);
  });
});

describe("ogygia-irisd's error messages", () => {
  it("escape control characters from the configuration path", async () => {
    const file = path.join(dir, "absent\u001b[31m.toml");
    const result = await runIrisd(["--check-config", "--config", file]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("absent\\x1b[31m.toml");
    expect(result.stderr).not.toContain("\u001b");
  });

  it("escape control characters from an unknown option", async () => {
    const result = await runIrisd(["--bad\u001b]0;title\u0007"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--bad\\x1b]0;title\\x07");
    expect(result.stderr).not.toContain("\u001b");
  });
});
