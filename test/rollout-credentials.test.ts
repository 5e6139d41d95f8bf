/**
 * Rollouts under fleet credentials and per-host isolation, on every
 * registered backend (etcd with authentication on; ZooKeeper with digest
 * identities and ACLs): `ogygia fleet grant` gives each host what its update
 * agent needs of the rollout's keys, the operator starts the rollout with the
 * admin's credentials, the agents (each with its own) finish it; a granted
 * host still cannot write another host's keys nor the plan; the nodes the
 * ZooKeeper coordinator creates are not writable by others; `revoke` takes
 * the rollout rights back.
 */

import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

import zookeeper from "node-zookeeper-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { prefixRangeEnd } from "../src/fleet/etcd-client/index.js";
import { openCoordinator, type Coordinator } from "../src/fleet/index.js";
import { runCli } from "./helpers/cli.js";
import { enableEtcdAuth, type EtcdTestClient } from "./helpers/etcd.js";
import { FLEET_HARNESSES, type FleetServer } from "./helpers/fleet.js";
import { generateKeys } from "./helpers/nix.js";
import { removeDir, tempDir, waitFor, type ManagedProcess } from "./helpers/process.js";
import {
  buildSystems,
  makeCache,
  makeHostRoot,
  readSystemPaths,
  startAgent,
  startPublisher,
  systemConfig,
  type SystemSpec,
} from "./helpers/rollout.js";

const REV_A = "a".repeat(40);
const REV_B = "b".repeat(40);
const HOSTS = ["h1", "h2"];

interface ProgressJson {
  state: string;
  hosts: { host: string; state: string; error: string | null }[];
}

describe.each(FLEET_HARNESSES)(
  "rollouts with $label credentials and per-host grants",
  (harness) => {
    let server: FleetServer;
    let dir: string;
    let etcdRoot: EtcdTestClient | undefined;
    const namespace = `/creds-${process.pid}/versions`;
    const prefix = `/creds-${process.pid}/rollout/versions`;
    /** The admin: etcd's root; on ZooKeeper any digest identity. */
    const adminUser = harness.kind === "etcd" ? "root" : "admin";
    const processes: ManagedProcess[] = [];
    const coordinators: Coordinator[] = [];
    let adminConfig: string;
    let systems: Record<string, string>;
    let roots: Record<string, string>;

    const passwordFile = (user: string): string => path.join(dir, `${user}.password`);

    /** The backend's settings as `user` (its password file from `grant`). */
    function settings(user: string): Parameters<typeof openCoordinator>[1] {
      return {
        endpoints: [server.endpoint],
        namespace,
        timeoutSeconds: 8,
        credentials: { username: user, passwordFile: passwordFile(user) },
      };
    }

    async function coordinatorAs(user: string): Promise<Coordinator> {
      const coordinator = await openCoordinator(harness.kind, settings(user));
      coordinators.push(coordinator);
      return coordinator;
    }

    async function rollout(args: string[]): Promise<ProgressJson> {
      const result = await runCli(["rollout", ...args, "--config", adminConfig, "--json"], {
        env: { OGYGIA_CONFIG: undefined },
      });
      if (result.code !== 0) throw new Error(`rollout ${args.join(" ")} failed:\n${result.stderr}`);
      return JSON.parse(result.stdout) as ProgressJson;
    }

    /** A ZooKeeper node's ACL, read without credentials (ACLs are readable by all); null: no node. */
    function zkAcl(node: string): Promise<{ perms: number; scheme: string; id: string }[] | null> {
      return new Promise((resolve, reject) => {
        const client = zookeeper.createClient(server.endpoint, { sessionTimeout: 10_000 });
        client.once("connected", () => {
          client.getACL(node, (err, acls) => {
            client.close();
            if (err && (err as zookeeper.Exception).getCode() === zookeeper.Exception.NO_NODE) {
              resolve(null);
            } else if (err) {
              reject(new Error(String(err)));
            } else {
              // The typings say `perms`; the library's ACL objects hold `permission`.
              resolve(
                acls.map((a) => ({
                  perms: (a as unknown as { permission: number }).permission,
                  scheme: a.id.scheme,
                  id: a.id.id,
                })),
              );
            }
          });
        });
        client.connect();
      });
    }

    beforeAll(async () => {
      server = await harness.start();
      dir = await tempDir("rollout-credentials");
      const adminPassword = "admin-secret";
      await writeFile(passwordFile(adminUser), `${adminPassword}\n`, { mode: 0o600 });
      if (server.native.kind === "etcd") {
        etcdRoot = await enableEtcdAuth(server.native.etcd, adminPassword);
      }
      const keysDir = path.join(dir, "keys");
      await mkdir(keysDir);
      const keys = await generateKeys(keysDir, `creds-${harness.kind}`);
      // Each host's systems carry its own identity, as on NixOS.
      const configOf = (user: string): string =>
        systemConfig({
          kind: harness.kind,
          endpoint: server.endpoint,
          namespace,
          cacheUrl: `file://${path.join(dir, "cache")}`,
          publicKey: keys.publicKey,
          credentials: { username: user, passwordFile: passwordFile(user) },
        });
      const specs: Record<string, SystemSpec> = {};
      for (const host of HOSTS) {
        specs[`base-${host}`] = { revision: REV_A, config: configOf(host) };
        specs[host] = { revision: REV_B, config: configOf(host) };
        specs[`unsigned-${host}`] = { revision: REV_B, config: configOf(host), signed: false };
      }
      systems = await buildSystems(dir, specs);
      await makeCache(dir, systems, specs, keys);
      roots = {};
      for (const host of HOSTS) {
        roots[host] = path.join(dir, host);
        await makeHostRoot(roots[host], systems[`base-${host}`] ?? "");
      }
      adminConfig = path.join(dir, "admin.toml");
      await writeFile(adminConfig, configOf(adminUser));
    }, 300_000);

    afterEach(async () => {
      await Promise.all(processes.splice(0).map((p) => p.stop("SIGKILL")));
    });

    afterAll(async () => {
      await Promise.allSettled(coordinators.splice(0).map((c) => c.close()));
      etcdRoot?.raw.close();
      await server.stop();
      await removeDir(dir);
    });
    /**
     * What an older version left: h2 granted without rollout rights (etcd: its
     * role as `grant` made it then), and rollout nodes a coordinator without
     * credentials made open to all (ZooKeeper).
     */
    async function seedOlderGrant(): Promise<void> {
      if (etcdRoot) {
        const raw = etcdRoot.raw;
        const role = "ogygia-host-h2";
        await raw.roleAdd(role);
        for (const [type, key] of [
          ["read", `${namespace}/`],
          ["readwrite", `${namespace}/h2/`],
        ] as const) {
          const bytes = Buffer.from(key);
          await raw.roleGrantPermission(role, {
            type,
            key: bytes,
            rangeEnd: prefixRangeEnd(bytes),
          });
        }
        await raw.userAdd("h2", "old-password");
        await raw.userGrantRole("h2", role);
      } else if (server.native.kind === "zookeeper") {
        await server.native.zk.put(`${prefix}/failed/left-open`, '{"host":"h9"}');
        await server.native.zk.put(`${prefix}/slots`, "");
      }
    }

    it("grants the hosts (upgrading an older grant), whose agents then finish a rollout the admin started", async () => {
      await seedOlderGrant();
      for (const host of HOSTS) {
        const grant = await runCli([
          "fleet",
          "grant",
          host,
          "--password-file",
          passwordFile(host),
          "--config",
          adminConfig,
        ]);
        expect(grant.code, grant.stderr).toBe(0);
      }
      if (harness.kind === "zookeeper") {
        // Granting closed what was left open to all.
        for (const node of [
          prefix,
          `${prefix}/slots`,
          `${prefix}/failed`,
          `${prefix}/failed/left-open`,
        ]) {
          const acl = await zkAcl(node);
          expect(acl, node).not.toBeNull();
          for (const entry of acl ?? []) {
            if (entry.scheme === "world") expect(entry.perms, node).toBe(zookeeper.Permission.READ);
          }
        }
      }
      const release = path.join(dir, "release.json");
      await writeFile(
        release,
        JSON.stringify({
          revision: REV_B,
          hosts: Object.fromEntries(HOSTS.map((h) => [h, systems[h]])),
        }),
      );
      await rollout(["start", release, "--concurrency", "1", "--soak", "0"]);
      for (const host of HOSTS) {
        const root = roots[host] ?? "";
        processes.push(startPublisher(host, root), startAgent(host, root));
      }
      await waitFor(
        "the rollout to complete",
        async () => ((await rollout(["status"])).state === "completed" ? true : undefined),
        { timeoutMs: 120_000, intervalMs: 250 },
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}\n${processes.map((p) => p.output()).join("\n")}`);
      });
      for (const host of HOSTS) {
        expect(readSystemPaths(roots[host] ?? "")).toMatchObject({
          current: systems[host],
          nextboot: systems[host],
        });
      }
    }, 180_000);

    it("records a failed path with a host's own credentials", async () => {
      const release = path.join(dir, "unsigned.json");
      await writeFile(
        release,
        JSON.stringify({ revision: REV_B, hosts: { h1: systems["unsigned-h1"] } }),
      );
      await rollout(["start", release, "--soak", "0"]);
      processes.push(startAgent("h1", roots.h1 ?? ""));
      const failed = `${prefix}/failed/${path.basename(systems["unsigned-h1"] ?? "")}`;
      const admin = await coordinatorAs(adminUser);
      const record = await waitFor(
        "the failed path to be recorded",
        async () => (await admin.get(failed)).entry ?? undefined,
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      expect(JSON.parse(Buffer.from(record.value).toString("utf8"))).toMatchObject({ host: "h1" });
      const status = await rollout(["status"]);
      expect(status.hosts.find((h) => h.host === "h1")?.state).toBe("failed");
    }, 120_000);

    it("still refuses a host's writes to another host's keys and to the plan", async () => {
      const h1 = await coordinatorAs("h1");
      const theirs = `${namespace}/h2/update_state`;
      const { entry } = await h1.get(theirs);
      expect(entry).not.toBeNull();
      await expect(
        h1.compareAndSet(theirs, { version: entry?.version ?? 0n }, Buffer.from("confirmed")),
      ).rejects.toThrow(/refused to let user "h1"/);
      await expect(
        h1.compareAndSetMany([
          { key: `${namespace}/h2/update_error`, expected: "absent", value: Buffer.from("forged") },
        ]),
      ).rejects.toThrow(/refused to let user "h1"/);
      const plan = await h1.get(`${prefix}/plan`);
      await expect(
        h1.compareAndSet(
          `${prefix}/plan`,
          { version: plan.entry?.version ?? 0n },
          Buffer.from("{}"),
        ),
      ).rejects.toThrow(/refused to let user "h1"/);
      // Its own keys it may write.
      const own = await h1.get(`${namespace}/h1/update_error`);
      const written = await h1.compareAndSetMany([
        {
          key: `${namespace}/h1/update_error`,
          expected: own.entry ? { version: own.entry.version } : "absent",
          value: Buffer.from("checked by the test"),
        },
      ]);
      expect(written.won).toBe(true);
    }, 60_000);

    // ZooKeeper's ACLs are per node; etcd's roles are checked by the tests above.
    // Registered for ZooKeeper only, so the etcd run shows no skipped test.
    const zookeeperOnly = harness.kind === "zookeeper" ? it : undefined;
    zookeeperOnly?.(
      "creates the coordinator's nodes readable by all and writable by their creator only",
      async () => {
        const h1 = await coordinatorAs("h1");
        const lease = await h1.grantLease({ ttlMs: 4000 });
        const lock = await h1.tryAcquireLock(`${prefix}/slots/7`, { holder: "h1", lease });
        expect(lock).not.toBeNull();
        const nodes = [
          `${namespace}/h1/update_state`,
          `${namespace}/h2/update_state`,
          `${prefix}/plan`,
          `${prefix}/slots/7`,
          `${prefix}/failed/${path.basename(systems["unsigned-h1"] ?? "")}`,
        ];
        for (const node of nodes) {
          const acl = await zkAcl(node);
          expect(acl, node).not.toBeNull();
          for (const entry of acl ?? []) {
            if (entry.scheme === "world") expect(entry.perms, node).toBe(zookeeper.Permission.READ);
          }
          expect(
            acl?.some((a) => a.scheme === "digest"),
            node,
          ).toBe(true);
        }
        await lock?.release();
        await lease.revoke();
      },
      60_000,
    );

    it("revoke takes the rollout rights back", async () => {
      const revoked = await runCli(["fleet", "revoke", "h2", "--config", adminConfig]);
      expect(revoked.code, revoked.stderr).toBe(0);
      const h2 = await openCoordinator(harness.kind, settings("h2"));
      coordinators.push(h2);
      const attempt = async (): Promise<unknown> => {
        const lease = await h2.grantLease({ ttlMs: 4000 });
        return h2.tryAcquireLock(`${prefix}/slots/0`, { holder: "h2", lease });
      };
      await expect(attempt()).rejects.toThrow(/refused/);
      if (harness.kind === "zookeeper") {
        const slots = await zkAcl(`${prefix}/slots`);
        expect(slots?.some((a) => a.id.startsWith("h2:"))).toBe(false);
        expect(slots?.some((a) => a.id.startsWith("h1:"))).toBe(true);
      }
    }, 60_000);
  },
);
