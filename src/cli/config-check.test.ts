import { describe, expect, it } from "vitest";

import { parseConfig } from "../config/index.js";
import { renderConfigCheck, summarizeConfig } from "./config-check.js";

const FILE = "/etc/ogygia/config.toml";

async function summary(lines: string[]): Promise<ReturnType<typeof summarizeConfig>> {
  return summarizeConfig(await parseConfig(lines.join("\n"), FILE));
}

describe("summarizeConfig", () => {
  it("picks etcd over ZooKeeper when both are set, as status and publish do", async () => {
    const result = await summary([
      "[ogygia.zookeeper]",
      'endpoints = ["zk1:2181"]',
      'namespace = "/zk"',
      "[ogygia.etcd]",
      'endpoints = ["http://etcd1:2379", "http://etcd2:2379"]',
      'namespace = "/fleet/"',
    ]);
    expect(result).toEqual({
      file: FILE,
      valid: true,
      backend: "etcd",
      namespace: "/fleet",
      endpoints: ["http://etcd1:2379", "http://etcd2:2379"],
    });
  });

  it("reports ZooKeeper with the default namespace", async () => {
    const result = await summary(["[ogygia.zookeeper]", 'endpoints = ["zk1:2181", "zk2:2181"]']);
    expect(result.backend).toBe("zookeeper");
    expect(result.namespace).toBe("/nixos/versions");
    expect(result.endpoints).toEqual(["zk1:2181", "zk2:2181"]);
  });

  it("reports local-only mode for a file without a backend", async () => {
    const result = await summary(['[ogygia]\ndomain = "example.com"']);
    expect(result).toEqual({
      file: FILE,
      valid: true,
      backend: null,
      namespace: null,
      endpoints: [],
    });
  });

  it("redacts credentials in endpoint URLs", async () => {
    const result = await summary([
      "[ogygia.etcd]",
      'endpoints = ["http://root:secret@etcd1:2379"]',
    ]);
    expect(result.endpoints).toEqual(["http://***@etcd1:2379"]);
  });
});

describe("renderConfigCheck", () => {
  it("names the file, the backend, the endpoint count and the namespace", async () => {
    const result = await summary(["[ogygia.etcd]", 'endpoints = ["http://a:2379"]']);
    expect(renderConfigCheck(result)).toBe(
      `configuration ${FILE} is valid: etcd backend (1 endpoint, namespace /nixos/versions)`,
    );
  });

  it("says local-only mode when no backend is set", async () => {
    expect(renderConfigCheck(await summary([]))).toBe(
      `configuration ${FILE} is valid: no fleet backend: local-only mode`,
    );
  });

  it("escapes control characters in the file name", () => {
    const line = renderConfigCheck({
      file: "/tmp/a\x1b[31mb.toml",
      valid: true,
      backend: null,
      namespace: null,
      endpoints: [],
    });
    expect(line).toBe(
      "configuration /tmp/a\\x1b[31mb.toml is valid: no fleet backend: local-only mode",
    );
  });
});
