import { describe, expect, it } from "vitest";

import {
  BACKENDS,
  backendLabel,
  backendPrecedence,
  configuredBackend,
  describeBackends,
} from "./index.js";
import type { BackendConfig } from "./types.js";

const settings = (namespace: string): BackendConfig => ({
  endpoints: ["127.0.0.1:1"],
  namespace,
  timeoutSeconds: 1,
});

describe("the backend registry", () => {
  it("names each backend as messages do", () => {
    expect(BACKENDS.map((b) => [b.kind, backendLabel(b.kind), b.section])).toEqual([
      ["etcd", "etcd", "[ogygia.etcd]"],
      ["zookeeper", "ZooKeeper", "[ogygia.zookeeper]"],
    ]);
  });

  it("builds the phrases that list every backend", () => {
    expect(describeBackends("label", "or")).toBe("etcd or ZooKeeper");
    expect(describeBackends("label", "nor")).toBe("neither etcd nor ZooKeeper");
    expect(describeBackends("section", "or")).toBe("[ogygia.etcd] or [ogygia.zookeeper]");
    expect(describeBackends("liveness", "or")).toBe("etcd lease or ZooKeeper session");
    expect(backendPrecedence()).toBe("etcd wins when both etcd and ZooKeeper are set");
  });

  it("selects the first registered backend a configuration has, or none", () => {
    const both = configuredBackend({ etcd: settings("/a"), zookeeper: settings("/b") });
    expect([both?.entry.kind, both?.settings.namespace]).toEqual(["etcd", "/a"]);
    expect(configuredBackend({ etcd: undefined, zookeeper: settings("/b") })?.entry.kind).toBe(
      "zookeeper",
    );
    expect(configuredBackend({ etcd: undefined, zookeeper: undefined })).toBeUndefined();
  });

  it("loads an adapter that opens a reader and a publisher of its kind", async () => {
    for (const entry of BACKENDS) {
      const adapter = await entry.load();
      const backend = adapter.open(settings("/registry-test"));
      expect(backend.kind).toBe(entry.kind);
      await backend.close();
      const publisher = adapter.openPublisher(settings("/registry-test"), {
        host: "h",
        leaseTtlSeconds: 10,
      });
      expect(publisher.kind).toBe(entry.kind);
      await publisher.close({ revoke: false });
    }
  });
});
