/**
 * The NixOS module's Nebula options (`nix/modules/nebula.nix`), evaluated
 * with nixpkgs' lib and the stub NixOS options of `test/nix/evaluate.nix`:
 * nixpkgs' `services.nebula.networks.<network>`, the first-boot keygen
 * service, irisd on (and advertising) the Nebula address, and the CLI's
 * `[ogygia.nebula]` section, checked by `ogygia config check`.
 */

import { writeFile } from "node:fs/promises";
import path from "node:path";

import { stringify } from "smol-toml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { irisUrlFromConfigFile } from "../src/iris/index.js";
import { runCli } from "./helpers/cli.js";
import { evaluateExamples, type ExampleReport } from "./helpers/nixos.js";
import { removeDir, tempDir } from "./helpers/process.js";

const HOST = `nebula = {
  enable = true; ipv4 = "10.42.3.7"; prefixLength = 16;
  caFile = "/etc/nebula/ca.crt"; certFile = "/etc/nebula/web01.crt";
  lighthouses = [ "10.42.0.1" ]; staticHostMap."10.42.0.1" = [ "203.0.113.10:4242" ];
}`;
const FLEET = `enable = true; etcd.endpoints = [ "http://127.0.0.1:2379" ]; publish.enable = true;`;

let report: Record<string, ExampleReport>;
let dir: string;

function example(name: string): ExampleReport {
  const found = report[name];
  if (found === undefined) throw new Error(`no example named ${name}`);
  return found;
}

beforeAll(async () => {
  dir = await tempDir("nebula-module");
  report = (
    (await evaluateExamples({
      "nebula-host": `{ ogygia = { ${FLEET} ${HOST};
        irisd = { enable = true; settings.server.listen = [ "127.0.0.1:35742" ]; registry.enable = true; }; }; }`,
      "nebula-lighthouse": `{ ogygia = { ${FLEET} nebula = { enable = true; ipv4 = "10.42.0.1"; isLighthouse = true;
        network = "corp"; keyDir = "/var/lib/nebula-keys"; caFile = "/etc/nebula/ca.crt"; certFile = "/etc/nebula/lh.crt"; }; }; }`,
      "nebula-advertise-set": `{ ogygia = { ${FLEET} ${HOST};
        irisd = { enable = true; settings.server.listen = [ "127.0.0.1:35742" ]; registry = { enable = true; advertise = "http://cache.example.com:35742"; }; }; }; }`,
      "nebula-lan-first": `{ ogygia = { ${FLEET} ${HOST};
        irisd = { enable = true; settings.server.listen = [ "192.0.2.5:35742" ]; registry.enable = true; }; }; }`,
      "nebula-incomplete": `{ ogygia = { enable = true; nebula.enable = true; }; }`,
    })) as unknown as { examples: Record<string, ExampleReport> }
  ).examples;
});

afterAll(async () => {
  await removeDir(dir);
});

describe("ogygia.nebula (nix/modules/nebula.nix)", () => {
  it("configures nixpkgs' nebula network with the CA, the host's certificate and its own key", () => {
    const host = example("nebula-host");
    expect(host.failedAssertions).toEqual([]);
    expect(host.failures).toEqual([]);
    expect(host.nebulaNetworks).toEqual({
      ogygia: {
        enable: true,
        ca: "/etc/nebula/ca.crt",
        cert: "/etc/nebula/web01.crt",
        key: "/var/lib/ogygia/nebula/host.key",
        isLighthouse: false,
        lighthouses: ["10.42.0.1"],
        staticHostMap: { "10.42.0.1": ["203.0.113.10:4242"] },
        firewall: {
          inbound: [
            { port: "any", proto: "icmp", host: "any" },
            { port: 35742, proto: "tcp", host: "any" },
          ],
          outbound: [{ port: "any", proto: "any", host: "any" }],
        },
      },
    });
  });

  it("makes the key at first boot with ogygia nebula keygen, for Nebula's user, before Nebula starts", () => {
    const host = example("nebula-host");
    const keygen = host.services["ogygia-nebula-keygen"];
    expect(keygen?.path).toEqual(["nebula"]);
    expect(keygen?.serviceConfig).toMatchObject({ Type: "oneshot", RemainAfterExit: true });
    expect(keygen?.serviceConfig.ExecStart).toMatch(
      /^\/nix\/store\/[^ ]+\/bin\/ogygia nebula keygen --dir \/var\/lib\/ogygia\/nebula$/,
    );
    expect(keygen?.serviceConfig.ExecStartPost).toMatch(
      /\/bin\/chown -R nebula-ogygia:nebula-ogygia \/var\/lib\/ogygia\/nebula$/,
    );
    expect(host.services["nebula@ogygia"]).toMatchObject({
      wants: ["ogygia-nebula-keygen.service"],
      after: ["ogygia-nebula-keygen.service"],
    });
    const lighthouse = example("nebula-lighthouse");
    expect(lighthouse.failedAssertions).toEqual([]);
    expect(lighthouse.services["ogygia-nebula-keygen"]?.serviceConfig.ExecStartPost).toMatch(
      /chown -R nebula-corp:nebula-corp \/var\/lib\/nebula-keys$/,
    );
    expect(lighthouse.nebulaNetworks.corp).toMatchObject({
      isLighthouse: true,
      lighthouses: [],
      key: "/var/lib/nebula-keys/host.key",
    });
  });

  it("has irisd listen on the Nebula address and, with registry peers, advertise it", async () => {
    const host = example("nebula-host");
    expect(host.irisdConfig?.settings.server).toEqual({
      listen: ["127.0.0.1:35742", "10.42.3.7:35742"],
    });
    // What the publisher advertises as iris_url from that configuration: the Nebula address.
    const irisdFile = path.join(dir, "irisd.toml");
    await writeFile(irisdFile, stringify(host.irisdConfig?.settings ?? {}));
    expect(await irisUrlFromConfigFile(irisdFile)).toBe("http://10.42.3.7:35742");
    // An advertise set by hand wins; a reachable address listed first is refused.
    expect(example("nebula-advertise-set").failedAssertions).toEqual([]);
    expect(example("nebula-advertise-set").irisdConfig?.settings.server).toMatchObject({
      advertise: "http://cache.example.com:35742",
    });
    expect(example("nebula-lan-first").failedAssertions).toEqual([
      expect.stringContaining(
        "irisd would advertise 192.0.2.5:35742 to its peers, not its Nebula address",
      ),
    ]);
  });

  it("writes [ogygia.nebula] for publish and status, which ogygia config check accepts", async () => {
    const host = example("nebula-host");
    const settings = host.cliConfig?.settings as { ogygia: Record<string, unknown> };
    expect(settings.ogygia.nebula).toEqual({
      network: "ogygia",
      subnet: "10.42.0.0/16",
      cert_file: "/etc/nebula/web01.crt",
      ca_files: ["/etc/nebula/ca.crt"],
    });
    // The publisher reads the certificate with nebula-cert.
    expect(host.services["ogygia-publish"]?.path).toContain("nebula");
    const file = path.join(dir, "config.toml");
    await writeFile(file, stringify(settings));
    const check = await runCli(["config", "check", file]);
    expect(check.code, check.stderr).toBe(0);
  });

  it("refuses a host without its address, certificate or lighthouses", () => {
    expect(example("nebula-incomplete").failedAssertions).toEqual([
      expect.stringContaining("ogygia.nebula.enable needs ogygia.nebula.ipv4"),
      expect.stringContaining("needs ogygia.nebula.caFile and ogygia.nebula.certFile"),
      expect.stringContaining("ogygia.nebula.lighthouses is empty"),
    ]);
  });

  it("changes nothing when disabled", () => {
    expect(example("nebula-host").nebulaNetworks).not.toEqual({});
    expect(report.disabled?.nebulaNetworks).toEqual({});
    expect(report.minimal?.services["ogygia-nebula-keygen"]).toBeUndefined();
  });
});
