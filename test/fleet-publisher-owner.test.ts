/**
 * Issue 13, row 7: two publishers with the same host name. The second
 * finds `alive` held by the first's lease (etcd) or session (ZooKeeper),
 * says so, and stands by writing nothing; stopping it never revokes the
 * first's `alive`; when the first stops, the second takes over.
 */

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { FLEET_HARNESSES, type FleetServer } from "./helpers/fleet.js";
import { waitFor, type ManagedProcess } from "./helpers/process.js";
import {
  REV,
  makeBootRoot,
  publishConfig,
  startPublisher,
  uniqueNamespace,
  type BootRoot,
} from "./helpers/publish.js";

const HOST = "web01.example.com";

describe.each(FLEET_HARNESSES)("two $label publishers with one host name", (harness) => {
  let server: FleetServer;
  const started: ManagedProcess[] = [];
  const roots: BootRoot[] = [];

  beforeAll(async () => {
    server = await harness.start();
  });

  afterEach(async () => {
    await Promise.all(started.splice(0).map((p) => p.stop("SIGKILL")));
    await Promise.all(roots.splice(0).map((r) => r.remove()));
  });

  afterAll(async () => {
    await server.stop();
  });

  async function rootAt(revision: string): Promise<BootRoot> {
    const root = await makeBootRoot({
      current: { revision },
      booted: { revision },
      nextboot: { revision },
    });
    roots.push(root);
    return root;
  }

  function start(config: string, root: BootRoot): ManagedProcess {
    const proc = startPublisher({ config, root: root.root, host: HOST });
    started.push(proc);
    return proc;
  }

  it("the second stands by, never overwrites or revokes the first, and takes over after it", async () => {
    const namespace = uniqueNamespace();
    const key = (field: string): Promise<string | null> =>
      server.get(`${namespace}/${HOST}/${field}`);
    const alive = `${namespace}/${HOST}/alive`;
    const config = await publishConfig({
      backend: harness.kind,
      endpoint: server.endpoint,
      namespace,
      leaseTtlSeconds: 3,
      resyncIntervalSeconds: 1,
    });
    const first = start(config, await rootAt(REV.a));
    await waitFor("the first publisher to hold alive", async () =>
      (await key("alive")) !== null && (await key("current")) === REV.a ? true : undefined,
    );
    const owner = await server.liveness(alive);
    expect(owner).not.toBeNull();

    const secondRoot = await rootAt(REV.c);
    const standBy = (proc: ManagedProcess): Promise<boolean> =>
      waitFor(
        "the second publisher to stand by, twice",
        () => (proc.output().split("another publisher holds").length > 2 ? true : undefined),
        { timeoutMs: 20_000, intervalMs: 100 },
      );
    const second = start(config, secondRoot);
    await standBy(second);
    expect(second.output()).toContain(`two publishers use the host name \\"${HOST}\\"`);
    // Resyncs every second: the first keeps its state, the second wrote nothing.
    expect(await key("current")).toBe(REV.a);
    expect(await server.liveness(alive)).toBe(owner);

    await second.stop("SIGTERM");
    expect(await key("alive")).not.toBeNull();
    expect(await server.liveness(alive)).toBe(owner);
    expect(first.child.exitCode).toBeNull();

    // A stand-by publisher takes over once the owner stops.
    const third = start(config, secondRoot);
    await standBy(third);
    await first.stop("SIGTERM");
    await waitFor(
      "the stand-by publisher to take over",
      async () => {
        const now = await server.liveness(alive);
        return now !== null && now !== owner && (await key("current")) === REV.c ? true : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
  });
});
