/**
 * ogygia-irisd as a complete binary cache for a real Nix 2.8 client: what
 * Nix expects of a read-only cache (`nix copy --to` fails with our message,
 * unknown NAR names are 404), `/health` and `/version`, NAR listings
 * (`/<hash>.ls`, byte for byte Nix's own, from the store and from the NAR
 * cache).
 */

import { spawnSync } from "node:child_process";
import { access, lstat, readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  httpRequest,
  makeLargeTree,
  startIrisd,
  stopAllIrisd,
  type IrisdProcess,
} from "./helpers/irisd.js";
import {
  addToStore,
  hashPartOf,
  makeChrootStore,
  nix,
  nixCopy,
  runNix,
  signPaths,
  signedClosureStore,
  uniqueSalt,
  type SignedClosureStore,
} from "./helpers/nix.js";
import { removeDir, tempDir, waitFor } from "./helpers/process.js";

let dir: string;
let fixture: SignedClosureStore;
let irisd: IrisdProcess;
/** A content-addressed tree of 24 files of 40 KB: a NAR of about 1 MB. */
let bigTree: string;

beforeAll(async () => {
  dir = await tempDir("iris-complete");
  const treeDir = path.join(dir, `tree-${uniqueSalt("ls")}`);
  await makeLargeTree(path.join(treeDir, "share/data"), {
    files: 24,
    fileBytes: 40_000,
    seed: uniqueSalt("seed"),
  });
  await writeFile(path.join(treeDir, "README"), "a tree to list\n");
  bigTree = await addToStore(treeDir);
  fixture = await signedClosureStore(dir, "iris-complete", { extraPaths: [bigTree] });
  irisd = await startIrisd({ storeRoot: fixture.store.root });
}, 120_000);

/** `<hash>.ls` files as Nix writes them: `nix copy --to file://...?write-nar-listing=true`. */
async function nixListings(from: string, paths: readonly string[]): Promise<Map<string, string>> {
  const cache = path.join(dir, `nix-listing-${uniqueSalt("c")}`);
  await nix([
    "copy",
    "--no-check-sigs",
    "--from",
    from,
    "--to",
    `file://${cache}?write-nar-listing=true&compression=none`,
    ...paths,
  ]);
  const out = new Map<string, string>();
  for (const p of paths) {
    out.set(p, await readFile(path.join(cache, `${hashPartOf(p)}.ls`), "utf8"));
  }
  return out;
}

/** `irisd_http_response_body_bytes_total` of one route, from /metrics. */
async function routeBytes(node: IrisdProcess, route: string): Promise<number> {
  const text = (await httpRequest(`${node.url}/metrics`)).body.toString("utf8");
  let total = 0;
  for (const line of text.split("\n")) {
    if (
      line.startsWith("irisd_http_response_body_bytes_total{") &&
      line.includes(`route="${route}"`)
    ) {
      total += Number(line.split(" ").pop());
    }
  }
  return total;
}

afterAll(async () => {
  await stopAllIrisd();
  await removeDir(dir);
});

describe("a read-only cache, as Nix expects", () => {
  it("makes nix copy --to fail with the read-only message, uploading nothing", async () => {
    const file = path.join(dir, "upload-me");
    await writeFile(file, `${uniqueSalt("upload")}\n`);
    const stranger = await addToStore(file);
    const result = await nixCopy({
      to: irisd.url,
      paths: [stranger],
      allowFailure: true,
      cacheDir: path.join(dir, "xdg-upload"),
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("HTTP error 405");
    expect(result.stderr).toContain("this binary cache is read-only");
    const hashPart = path.basename(stranger).slice(0, 32);
    expect((await httpRequest(`${irisd.url}/${hashPart}.narinfo`)).status).toBe(404);
  });

  it("answers PUT and POST with 405, Allow and the message; nix-cache-info is unchanged", async () => {
    for (const [method, target] of [
      ["PUT", "/nar/1dcalga03qi3xwag9ak7fkissrl5lc1v15jgv4c3q6grccqb55vr.nar.xz"],
      ["PUT", "/0123456789abcdfghijklmnpqrsvwxyz.narinfo"],
      ["POST", "/nix-cache-info"],
    ] as const) {
      const res = await httpRequest(`${irisd.url}${target}`, { method });
      expect(res.status, `${method} ${target}`).toBe(405);
      expect(res.headers.allow).toBe("GET, HEAD");
      expect(res.body.toString("utf8")).toMatch(/read-only/);
    }
    const info = await httpRequest(`${irisd.url}/nix-cache-info`);
    expect(info.body.toString("utf8")).toBe(
      "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n",
    );
  });

  it("answers 404, not 400, for NAR names it does not know (Nix's own naming included)", async () => {
    for (const target of [
      "/nar/1dcalga03qi3xwag9ak7fkissrl5lc1v15jgv4c3q6grccqb55vr.nar",
      "/nar/1dcalga03qi3xwag9ak7fkissrl5lc1v15jgv4c3q6grccqb55vr.nar.xz",
      "/nar/abc.nar",
    ]) {
      expect((await httpRequest(`${irisd.url}${target}`)).status, target).toBe(404);
    }
  });
});

describe("GET /health and GET /version", () => {
  it("reports ready once the index is built, and the version with its features", async () => {
    const health = await httpRequest(`${irisd.url}/health`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body.toString("utf8"))).toMatchObject({
      status: "ready",
      indexReady: true,
    });
    const version = await httpRequest(`${irisd.url}/version`);
    expect(version.status).toBe(200);
    const answer = JSON.parse(version.body.toString("utf8")) as {
      name: string;
      features: string[];
    };
    expect(answer.name).toBe("ogygia-irisd");
    expect(answer.features).toContain("health");
  });
});

describe("GET /<hash>.ls: NAR listings", () => {
  it("serves byte for byte the listing Nix writes, for every kind of node", async () => {
    const paths = [...fixture.closure.paths, bigTree];
    const expected = await nixListings(fixture.store.root, paths);
    for (const p of paths) {
      const res = await httpRequest(`${irisd.url}/${hashPartOf(p)}.ls`);
      expect(res.status, p).toBe(200);
      expect(res.headers["content-type"]).toBe("application/json");
      expect(res.body.toString("utf8"), p).toBe(expected.get(p));
    }
  });

  it("is 404 for a path not served and for a name that is not a hash", async () => {
    expect((await httpRequest(`${irisd.url}/0123456789abcdfghijklmnpqrsvwxyz.ls`)).status).toBe(
      404,
    );
    expect((await httpRequest(`${irisd.url}/abc.ls`)).status).toBe(404);
  });

  it("lets nix store ls -lR through irisd print what it prints for the local store", async () => {
    const local = await nix(["store", "ls", "--store", fixture.store.root, "-lR", bigTree]);
    const listingBefore = await routeBytes(irisd, "listing");
    const narBefore = await routeBytes(irisd, "nar");
    const remote = await nix(["store", "ls", "--store", irisd.url, "-lR", bigTree], {
      env: { XDG_CACHE_HOME: path.join(dir, "xdg-ls") },
    });
    expect(remote).toBe(local);
    expect(remote).toContain("share/data/part-023");
    // What moved: Nix 2.8 reads the whole NAR for `nix store ls` (it never asks for .ls);
    // the listing itself is a small fraction of it.
    const narMoved = (await routeBytes(irisd, "nar")) - narBefore;
    const listing = await httpRequest(`${irisd.url}/${hashPartOf(bigTree)}.ls`);
    const listingMoved = (await routeBytes(irisd, "listing")) - listingBefore;
    expect(listingMoved).toBe(listing.body.length);
    expect(narMoved).toBeGreaterThan(900_000);
    expect(listing.body.length * 100).toBeLessThan(narMoved);
  });

  it("lists a NAR from the NAR cache, as the peer that sent it does", async () => {
    const seedFile = path.join(dir, "seed-c");
    await writeFile(seedFile, `${uniqueSalt("c")}\n`);
    const other = await makeChrootStore([await addToStore(seedFile)], {
      root: path.join(dir, "store-c"),
    });
    const nodeC = await startIrisd({
      storeRoot: other.root,
      peers: [irisd.url],
      trustedKeys: [fixture.keys.publicKey],
      cache: { dir: path.join(dir, "cache-c") },
    });
    const client = path.join(dir, "client-c");
    await nixCopy({
      from: nodeC.url,
      to: client,
      paths: [fixture.closure.top],
      trustedPublicKeys: [fixture.keys.publicKey],
      cacheDir: path.join(dir, "xdg-c"),
    });
    const hash = hashPartOf(fixture.closure.mid);
    // The NAR enters the cache once its transfer is complete, just after Nix has it.
    const fromCache = await waitFor("the NAR in node C's cache", async () => {
      const res = await httpRequest(`${nodeC.url}/${hash}.ls`);
      return res.status === 200 ? res : undefined;
    });
    const fromPeer = await httpRequest(`${irisd.url}/${hash}.ls`);
    expect(fromCache.body.toString("utf8")).toBe(fromPeer.body.toString("utf8"));
  });
});

describe("GET /log/<drv>: build logs", () => {
  it("lets nix log --store http://irisd print the log of a real build (bzip2 on disk)", async () => {
    const salt = uniqueSalt("log");
    const file = path.join(dir, "logged.nix");
    await writeFile(
      file,
      `derivation {
  name = "logged"; system = builtins.currentSystem;
  builder = "/bin/sh"; PATH = "/usr/bin:/bin";
  args = [ "-c" "for i in 1 2 3; do echo building ${salt} step $i; done; echo done > $out" ];
}
`,
    );
    const out = (await runNix("nix-build", [file, "--no-out-link"])).stdout.toString("utf8").trim();
    const drv = (await runNix("nix-instantiate", [file])).stdout.toString("utf8").trim();
    const name = path.basename(drv);
    // Nix 2.8 keeps it compressed.
    await access(`/nix/var/log/nix/drvs/${name.slice(0, 2)}/${name.slice(2)}.bz2`);
    const store = await makeChrootStore([out], { root: path.join(dir, "store-log") });
    await signPaths(fixture.keys, [out], { store: store.root });
    const node = await startIrisd({ storeRoot: store.root, logDir: "/nix/var/log/nix/drvs" });
    const printed = await nix(["log", "--store", node.url, out], {
      env: { XDG_CACHE_HOME: path.join(dir, "xdg-log") },
    });
    expect(printed).toContain(`building ${salt} step 1`);
    expect(printed).toContain(`building ${salt} step 3`);
    const direct = await httpRequest(`${node.url}/log/${name}`);
    expect(direct.status).toBe(200);
    expect(direct.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(direct.body.toString("utf8")).toBe(printed);
    // A log on disk whose derivation's outputs this daemon does not serve is not served.
    const other = path.basename(fixture.closure.derivations[0] ?? "");
    await access(`/nix/var/log/nix/drvs/${other.slice(0, 2)}/${other.slice(2)}.bz2`);
    expect((await httpRequest(`${node.url}/log/${other}`)).status).toBe(404);
    expect((await httpRequest(`${node.url}/log/not-a-drv`)).status).toBe(404);
    expect((await httpRequest(`${node.url}/log/${name.slice(0, -4)}`)).status).toBe(404);
  });
});

/** One GET over a Unix socket. */
function socketGet(socketPath: string, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: target, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

describe("listening on a Unix socket next to TCP", () => {
  it("serves the same answers on both, replaces a stale socket and removes its own", async () => {
    const socketPath = path.join(dir, "irisd.sock");
    // A socket file left behind by a daemon that died: nobody listens on it.
    spawnSync(process.execPath, [
      "-e",
      `require("node:net").createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, "SIGKILL"))`,
    ]);
    expect((await lstat(socketPath)).isSocket()).toBe(true);

    const node = await startIrisd({
      storeRoot: fixture.store.root,
      listen: ["127.0.0.1:0", `unix:${socketPath}`],
    });
    const listening = node.logs().find((l) => l.msg === "listening");
    expect(listening?.addresses).toEqual([node.url, `unix:${socketPath}`]);
    const hash = hashPartOf(fixture.closure.top);
    for (const target of ["/nix-cache-info", `/${hash}.narinfo`, `/${hash}.ls`]) {
      const overSocket = await socketGet(socketPath, target);
      const overTcp = await httpRequest(`${node.url}${target}`);
      expect(overSocket.status, target).toBe(200);
      expect(overSocket.body, target).toBe(overTcp.body.toString("utf8"));
    }
    // Anyone on the host may connect.
    expect((await lstat(socketPath)).mode & 0o777).toBe(0o777);
    // A second daemon on a live socket refuses to start.
    await expect(
      startIrisd({ storeRoot: fixture.store.root, listen: [`unix:${socketPath}`] }),
    ).rejects.toThrow(/already in use/);
    expect(await node.stop()).toBe(0);
    await expect(lstat(socketPath)).rejects.toThrow(/ENOENT/);
  });
});
