/**
 * irisd finding its peers in the fleet registry, once per backend (real
 * etcd, real ZooKeeper): real `ogygia publish` processes write each host's
 * `iris_url` (from the irisd configuration under their root), daemons with
 * `[peers] registry = true` and no `urls` find each other, take a third host
 * as it comes online, drop it when it stops (SIGTERM), and a real Nix
 * client copies a closure through a peer found that way.
 */

import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { evaluateExamples, type ExampleReport } from "./helpers/nixos.js";
import { FLEET_HARNESSES, type FleetServer } from "./helpers/fleet.js";
import {
  irisdConfigText,
  startIrisd,
  stopAllIrisd,
  type IrisdConfigOptions,
  type IrisdLogLine,
  type IrisdProcess,
} from "./helpers/irisd.js";
import {
  addToStore,
  makeChrootStore,
  nix,
  nixCopy,
  signedClosureStore,
  uniqueSalt,
  type SignedClosureStore,
} from "./helpers/nix.js";
import { freePort, removeDir, tempDir, waitFor, type ManagedProcess } from "./helpers/process.js";
import {
  publishConfig,
  standardBootRoot,
  startPublisher,
  uniqueNamespace,
  type BootRoot,
} from "./helpers/publish.js";

interface Host {
  name: string;
  url: string;
  boot: BootRoot;
  irisd: IrisdProcess;
  publisher: ManagedProcess;
}

/** The peers a daemon uses now, from its last `peers changed` line. */
function peersOf(node: IrisdProcess): string[] {
  const changes = node.logs().filter((l) => l.msg === "peers changed");
  return (changes[changes.length - 1]?.peers as string[] | undefined) ?? [];
}

function timeOf(line: IrisdLogLine | undefined): number {
  return typeof line?.time === "number" ? line.time : Date.parse(String(line?.time));
}

let dir: string;
let fixture: SignedClosureStore;

beforeAll(async () => {
  dir = await tempDir("iris-registry");
  fixture = await signedClosureStore(dir, "iris-registry");
}, 120_000);

afterAll(async () => {
  await removeDir(dir);
});

describe.each(FLEET_HARNESSES)("peers from the $label registry", (harness) => {
  let server: FleetServer;
  let config: string;
  let namespace: string;
  const hosts: Host[] = [];

  async function emptyStore(name: string): Promise<string> {
    const file = path.join(dir, `${harness.kind}-${name}-seed`);
    await writeFile(file, `${uniqueSalt(name)}\n`);
    return (
      await makeChrootStore([await addToStore(file)], {
        root: path.join(dir, `${harness.kind}-${name}-store`),
      })
    ).root;
  }

  async function startHost(name: string, storeRoot: string): Promise<Host> {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const boot = await standardBootRoot();
    const options: IrisdConfigOptions = {
      storeRoot,
      listen: [`127.0.0.1:${port}`],
      advertise: url,
      registry: { ogygiaConfig: config },
      trustedKeys: [fixture.keys.publicKey],
      cache: { dir: path.join(dir, `${harness.kind}-${name}-cache`) },
    };
    // Where the publisher reads irisd's configuration: under its root, as on a host.
    await mkdir(path.join(boot.root, "etc/ogygia-irisd"), { recursive: true });
    await writeFile(path.join(boot.root, "etc/ogygia-irisd/config.toml"), irisdConfigText(options));
    const irisd = await startIrisd({ ...options, env: { OGYGIA_HOSTNAME: name } });
    const publisher = startPublisher({ config, root: boot.root, host: name, logLevel: "info" });
    const host = { name, url, boot, irisd, publisher };
    hosts.push(host);
    return host;
  }

  async function stopHost(host: Host): Promise<void> {
    await host.publisher.stop("SIGTERM");
    await host.irisd.stop("SIGTERM");
    await host.boot.remove();
  }

  beforeAll(async () => {
    server = await harness.start();
    namespace = uniqueNamespace();
    config = await publishConfig({ backend: harness.kind, endpoint: server.endpoint, namespace });
  }, 60_000);

  afterAll(async () => {
    for (const host of hosts) {
      await host.publisher.stop("SIGKILL");
      await host.boot.remove();
    }
    await stopAllIrisd();
    await server.stop();
  });

  it("finds every host with no urls, takes a newcomer, drops one stopped, copies through a peer", async () => {
    const a = await startHost("host-a", fixture.store.root);
    const b = await startHost("host-b", await emptyStore("b"));
    // Each publisher wrote where its irisd serves peers.
    await waitFor("iris_url of host-a", async () =>
      (await server.get(`${namespace}/host-a/iris_url`)) === a.url ? true : undefined,
    );
    await waitFor("a and b to find each other", () =>
      peersOf(a.irisd).includes(b.url) && peersOf(b.irisd).includes(a.url) ? true : undefined,
    );
    // Never itself.
    expect(peersOf(a.irisd)).toEqual([b.url]);
    expect(peersOf(b.irisd)).toEqual([a.url]);

    // A third host joins: both take it once its publisher is alive.
    const c = await startHost("host-c", await emptyStore("c"));
    await waitFor("a and b to take host-c", () =>
      peersOf(a.irisd).includes(c.url) && peersOf(b.irisd).includes(c.url) ? true : undefined,
    );
    await waitFor("host-c alive", async () =>
      (await server.get(`${namespace}/host-c/alive`)) !== null ? true : undefined,
    );
    // Reported, not asserted (timing belongs in bench/): alive written → peer taken.
    const taken = a.irisd
      .logs()
      .find((l) => l.msg === "peers changed" && (l.added as string[]).includes(c.url));
    const alive = c.publisher
      .output()
      .split("\n")
      .filter((l) => l.includes('"alive"') || l.includes('"msg":"alive"'))
      .map((l) => {
        try {
          return JSON.parse(l) as IrisdLogLine;
        } catch {
          return undefined;
        }
      })
      .find((l) => l?.msg === "alive");
    if (alive !== undefined && taken !== undefined) {
      process.stdout.write(
        `[${harness.kind}] host-c alive → peer of host-a: ${timeOf(taken) - timeOf(alive)} ms\n`,
      );
    }

    // A real Nix client copies A's closure through B, which found A in the registry.
    const client = path.join(dir, `${harness.kind}-client`);
    await nixCopy({
      from: b.url,
      to: client,
      paths: [fixture.closure.top],
      trustedPublicKeys: [fixture.keys.publicKey],
      cacheDir: path.join(dir, `${harness.kind}-xdg`),
    });
    await nix(["store", "verify", "--store", client, "-r", fixture.closure.top], {
      env: {
        NIX_CONFIG: `experimental-features = nix-command\ntrusted-public-keys = ${fixture.keys.publicKey}`,
      },
    });
    // ogygia iris providers needs nothing beyond the fleet's configuration.
    const providers = await runCli(["iris", "providers", "--irisd", c.url, fixture.closure.top]);
    expect(providers.stdout).toContain(a.url);

    // Host C stops (SIGTERM): its alive is revoked, the others drop it.
    await stopHost(c);
    await waitFor("a and b to drop host-c", () =>
      !peersOf(a.irisd).includes(c.url) && !peersOf(b.irisd).includes(c.url) ? true : undefined,
    );
    expect(peersOf(a.irisd)).toEqual([b.url]);
  }, 180_000);
});

describe("the NixOS module's ogygia.irisd.registry", () => {
  it("turns registry on in irisd's settings and tells the publisher where irisd's configuration is", async () => {
    const reports = (await evaluateExamples({
      registry: `{
        ogygia.enable = true;
        ogygia.etcd.endpoints = [ "http://127.0.0.1:2379" ];
        ogygia.publish.enable = true;
        ogygia.irisd.enable = true;
        ogygia.irisd.settings.server.listen = [ "10.0.0.1:35742" ];
        ogygia.irisd.registry.enable = true;
        ogygia.irisd.registry.advertise = "http://host-a.lan:35742";
      }`,
    })) as unknown as { examples: Record<string, ExampleReport> };
    const report = reports.examples.registry;
    expect(report?.failures).toEqual([]);
    expect(report?.failedAssertions).toEqual([]);
    expect(report?.irisdConfig?.settings).toMatchObject({
      server: { advertise: "http://host-a.lan:35742" },
      peers: { registry: true, ogygia_config: "/run/current-system/sw/share/ogygia/config.toml" },
    });
    expect(report?.services["ogygia-publish"]?.restartTriggers).toContain(
      report?.irisdConfig?.path,
    );
  }, 60_000);
});
