/**
 * ogygia-irisd serving chroot stores to a real Nix 2.8 client: `nix copy`
 * from it, `nix store verify` on the result, signatures (stored, added on
 * the fly, absent), content-addressed paths, concurrency, HEAD, Range, and
 * paths that disappear between the narinfo and the NAR.
 */

import { createHash } from "node:crypto";
import { lstat, readFile, readlink, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import {
  httpRequest,
  makeLargeTree,
  rawRequest,
  startIrisd,
  stopAllIrisd,
} from "./helpers/irisd.js";
import {
  hashPartOf,
  buildClosure,
  generateKeys,
  makeChrootStore,
  nix,
  nixVerify,
  nixCopy,
  nixDump,
  nixDumpDigest,
  pathInfoJson,
  runNix,
  signPaths,
  signedClosureStore,
  uniqueSalt,
  type ChrootStore,
  type TestClosure,
  type TestKeys,
} from "./helpers/nix.js";
import { removeDir, tempDir, waitFor } from "./helpers/process.js";

function narinfoField(text: string, field: string): string | undefined {
  return text
    .split("\n")
    .find((line) => line.startsWith(`${field}: `))
    ?.slice(field.length + 2);
}

async function narUrlOf(base: string, storePath: string): Promise<string> {
  const res = await httpRequest(`${base}/${hashPartOf(storePath)}.narinfo`);
  expect(res.status).toBe(200);
  const url = narinfoField(res.body.toString("utf8"), "URL");
  if (url === undefined) throw new Error("narinfo without URL");
  return `${base}/${url}`;
}

/** Adds `dir` to the chroot store at `root` as a content-addressed path. */
async function addToChroot(root: string, dir: string): Promise<string> {
  return (await runNix("nix-store", ["--store", root, "--add", dir])).stdout
    .toString("utf8")
    .trim();
}

/** `nix-store --dump` of a path in the chroot store at `root`. */
function dumpIn(root: string, storePath: string): Promise<Buffer> {
  return nixDump(path.join(root, storePath));
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

let dir: string;
let closure: TestClosure;
let unsigned: TestClosure;
let keys: TestKeys;
let signer: TestKeys;
let store: ChrootStore;
let unsignedStore: ChrootStore;
let caPath: string;

beforeAll(async () => {
  dir = await tempDir("iris-serve");
  [unsigned, signer] = await Promise.all([
    buildClosure(dir, uniqueSalt("iris-unsigned")),
    generateKeys(dir, "irisd-signer-1"),
  ]);
  ({ closure, keys, store } = await signedClosureStore(dir, "iris-serve", { storeName: "store" }));
  const tree = path.join(dir, "ca-tree");
  await makeLargeTree(tree, { files: 3, fileBytes: 1000, seed: uniqueSalt("ca") });
  caPath = await addToChroot(store.root, tree);
  unsignedStore = await makeChrootStore(unsigned.paths, { root: path.join(dir, "unsigned") });
}, 180_000);

afterEach(async () => {
  await stopAllIrisd();
});

afterAll(async () => {
  await removeDir(dir);
});

describe("a real Nix client", () => {
  it("copies a signed closure from irisd into a fresh store, and nix store verify passes", async () => {
    const irisd = await startIrisd({ storeRoot: store.root });
    const client = path.join(dir, "client-signed");
    await nixCopy({
      from: irisd.url,
      cacheDir: path.join(dir, "nix-cache-1"),
      to: client,
      paths: [closure.top],
      trustedPublicKeys: [keys.publicKey],
    });
    const copied = await pathInfoJson([closure.top], { store: client, recursive: true });
    expect(copied.map((p) => p.path).sort()).toEqual([...closure.paths].sort());
    await nixVerify({ store: client, paths: [closure.top], trustedPublicKeys: [keys.publicKey] });
    // The executable bit and the symlink made it through.
    const mid = path.join(client, closure.mid);
    expect((await stat(path.join(mid, "bin/run"))).mode & 0o111).not.toBe(0);
    expect((await lstat(path.join(mid, "leaf-link"))).isSymbolicLink()).toBe(true);
    expect(await readlink(path.join(mid, "leaf-link"))).toBe(closure.leaf);
  });

  it("gets a 404 for an unsigned path, and nix copy fails", async () => {
    const irisd = await startIrisd({ storeRoot: unsignedStore.root });
    for (const p of unsigned.paths) {
      expect((await httpRequest(`${irisd.url}/${hashPartOf(p)}.narinfo`)).status).toBe(404);
      expect(
        (await httpRequest(`${irisd.url}/${hashPartOf(p)}.narinfo`, { method: "HEAD" })).status,
      ).toBe(404);
    }
    const result = await nixCopy({
      from: irisd.url,
      cacheDir: path.join(dir, "nix-cache-2"),
      to: path.join(dir, "client-unsigned"),
      paths: [unsigned.top],
      trustedPublicKeys: [keys.publicKey],
      allowFailure: true,
    });
    expect(result.code).not.toBe(0);
  });

  it("copies the same unsigned closure once irisd has a [signing] key, carrying its signature", async () => {
    const irisd = await startIrisd({
      storeRoot: unsignedStore.root,
      secretKeyFiles: [signer.secretKeyFile],
    });
    const client = path.join(dir, "client-signer");
    await nixCopy({
      from: irisd.url,
      cacheDir: path.join(dir, "nix-cache-3"),
      to: client,
      paths: [unsigned.top],
      trustedPublicKeys: [signer.publicKey],
    });
    const copied = await pathInfoJson([unsigned.top], { store: client, recursive: true });
    expect(copied).toHaveLength(3);
    for (const info of copied) {
      expect(info.signatures?.some((s) => s.startsWith(`${signer.name}:`))).toBe(true);
    }
    // Only that key is trusted here: verify passes because of the on-the-fly signatures.
    await nixVerify({
      store: client,
      paths: [unsigned.top],
      trustedPublicKeys: [signer.publicKey],
    });
  });

  it("copies a content-addressed path that has no signature, trusting no key", async () => {
    const irisd = await startIrisd({ storeRoot: store.root });
    const client = path.join(dir, "client-ca");
    await nixCopy({
      from: irisd.url,
      to: client,
      paths: [caPath],
      trustedPublicKeys: [],
      cacheDir: path.join(dir, "nix-cache-ca"),
    });
    await nixVerify({ store: client, paths: [caPath], trustedPublicKeys: [], recursive: false });
  });
});

describe("the binary-cache protocol", () => {
  it("serves nix-cache-info with the store directory, mass query and priority", async () => {
    const irisd = await startIrisd({ storeRoot: store.root, priority: 12 });
    const res = await httpRequest(`${irisd.url}/nix-cache-info`);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/x-nix-cache-info");
    expect(res.body.toString()).toBe("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 12\n");
  });

  it("serves the narinfo Nix itself writes for the path, but for a self-describing URL", async () => {
    const irisd = await startIrisd({ storeRoot: store.root });
    const cache = path.join(dir, "file-cache");
    await nix([
      "copy",
      "--from",
      store.root,
      "--to",
      `file://${cache}?compression=none`,
      closure.mid,
    ]);
    const nixText = await readFile(path.join(cache, `${hashPartOf(closure.mid)}.narinfo`), "utf8");
    const res = await httpRequest(`${irisd.url}/${hashPartOf(closure.mid)}.narinfo`);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/x-nix-narinfo");
    const ours = res.body.toString("utf8");
    const narHash = narinfoField(nixText, "NarHash")?.replace("sha256:", "");
    expect(narinfoField(ours, "URL")).toBe(`nar/${hashPartOf(closure.mid)}-${narHash}.nar`);
    const withoutUrl = (text: string): string =>
      text
        .split("\n")
        .filter((l) => !l.startsWith("URL: "))
        .join("\n");
    expect(withoutUrl(ours)).toBe(withoutUrl(nixText));
  });

  it("streams NARs byte-identical to nix-store --dump, with exact headers", async () => {
    const irisd = await startIrisd({ storeRoot: store.root });
    for (const p of [...closure.paths, caPath]) {
      const res = await httpRequest(await narUrlOf(irisd.url, p));
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toBe("application/x-nix-nar");
      expect(res.headers["accept-ranges"]).toBe("bytes");
      expect(res.headers["content-length"]).toBe(String(res.body.length));
      expect(res.body.equals(await dumpIn(store.root, p))).toBe(true);
    }
  });

  it("answers HEAD for narinfo and NAR with the GET's headers and no body", async () => {
    const irisd = await startIrisd({ storeRoot: store.root });
    const narinfo = await httpRequest(`${irisd.url}/${hashPartOf(closure.mid)}.narinfo`);
    const narUrl = await narUrlOf(irisd.url, closure.mid);
    const narPath = new URL(narUrl).pathname;
    for (const [target, length] of [
      [`/${hashPartOf(closure.mid)}.narinfo`, narinfo.body.length],
      [narPath, (await dumpIn(store.root, closure.mid)).length],
    ] as const) {
      const raw = await rawRequest(
        irisd.port,
        `HEAD ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      expect(raw.status).toBe(200);
      expect(raw.head).toContain(`Content-Length: ${length}\r\n`);
      expect(raw.body.length).toBe(0);
    }
  });

  it("honours a single Range, so a download can resume", async () => {
    const irisd = await startIrisd({ storeRoot: store.root });
    const url = await narUrlOf(irisd.url, closure.mid);
    const whole = await dumpIn(store.root, closure.mid);
    const first = await httpRequest(url, { headers: { Range: "bytes=0-99" } });
    expect(first.status).toBe(206);
    expect(first.headers["content-range"]).toBe(`bytes 0-99/${whole.length}`);
    const rest = await httpRequest(url, { headers: { Range: "bytes=100-" } });
    expect(rest.status).toBe(206);
    expect(Buffer.concat([first.body, rest.body]).equals(whole)).toBe(true);
    const suffix = await httpRequest(url, { headers: { Range: "bytes=-10" } });
    expect(suffix.body.equals(whole.subarray(-10))).toBe(true);
    const etag = first.headers.etag ?? "";
    const stale = await httpRequest(url, { headers: { Range: "bytes=0-9", "If-Range": '"x"' } });
    expect(stale.status).toBe(200);
    const fresh = await httpRequest(url, { headers: { Range: "bytes=0-9", "If-Range": etag } });
    expect(fresh.status).toBe(206);
  });

  it("answers 100 concurrent narinfo and 100 concurrent NAR requests with the right bytes", async () => {
    const irisd = await startIrisd({ storeRoot: store.root });
    const paths = [...closure.paths, caPath];
    const expectedNar = new Map<string, string>();
    const expectedNarinfo = new Map<string, string>();
    const narUrls = new Map<string, string>();
    for (const p of paths) {
      expectedNar.set(p, sha256(await dumpIn(store.root, p)));
      narUrls.set(p, await narUrlOf(irisd.url, p));
      const res = await httpRequest(`${irisd.url}/${hashPartOf(p)}.narinfo`);
      expectedNarinfo.set(p, res.body.toString("utf8"));
    }
    const agent = new http.Agent({ keepAlive: true, maxSockets: 200 });
    try {
      const requests = Array.from({ length: 200 }, (_, i) => {
        const p = paths[i % paths.length] ?? "";
        if (i % 2 === 0) {
          return httpRequest(`${irisd.url}/${hashPartOf(p)}.narinfo`, { agent }).then((res) => {
            expect(res.status).toBe(200);
            expect(res.body.toString("utf8")).toBe(expectedNarinfo.get(p));
          });
        }
        return httpRequest(narUrls.get(p) ?? "", { agent }).then((res) => {
          expect(res.status).toBe(200);
          expect(sha256(res.body)).toBe(expectedNar.get(p));
        });
      });
      await Promise.all(requests);
    } finally {
      agent.destroy();
    }
  });

  it("counts requests, bytes and latency in /metrics", async () => {
    const irisd = await startIrisd({ storeRoot: store.root });
    const narUrl = await narUrlOf(irisd.url, closure.leaf);
    await httpRequest(narUrl);
    await httpRequest(`${irisd.url}/${"0".repeat(32)}.narinfo`);
    const res = await httpRequest(`${irisd.url}/metrics`);
    expect(res.status).toBe(200);
    const text = res.body.toString("utf8");
    expect(text).toContain('irisd_http_requests_total{route="narinfo",status="200"} 1');
    expect(text).toContain('irisd_http_requests_total{route="narinfo",status="404"} 1');
    expect(text).toContain('irisd_http_requests_total{route="nar",status="200"} 1');
    const narBytes = (await dumpIn(store.root, closure.leaf)).length;
    expect(text).toContain(`irisd_http_response_body_bytes_total{route="nar"} ${narBytes}`);
    expect(text).toMatch(/irisd_http_request_duration_seconds_count\{route="nar"\} 1/);
    expect(text).toContain("irisd_process_resident_memory_bytes");
  });
});

describe("paths that change under the server", () => {
  let small: ChrootStore;
  let big: ChrootStore;
  let bigPath: string;

  beforeAll(async () => {
    small = await makeChrootStore(closure.paths, { root: path.join(dir, "changing") });
    await signPaths(keys, [closure.top], { store: small.root });
    const tree = path.join(dir, "large-tree");
    // 48 files of 2 MiB: far more than the socket buffers and the writer's chunks in flight.
    await makeLargeTree(tree, { files: 48, fileBytes: 2 * 1024 * 1024, seed: "iris-large" });
    big = await makeChrootStore([], { root: path.join(dir, "vanishing") });
    bigPath = await addToChroot(big.root, tree);
  }, 120_000);

  it("answers 404 for a NAR URL naming another NAR hash (a path rebuilt differently)", async () => {
    const irisd = await startIrisd({ storeRoot: small.root });
    const url = await narUrlOf(irisd.url, closure.leaf);
    const other = url.replace(/-[0-9a-z]{52}\.nar$/, `-${"1".repeat(52)}.nar`);
    expect((await httpRequest(other)).status).toBe(404);
    expect((await httpRequest(url)).status).toBe(200);
  });

  it("answers 404 for the NAR of a path deleted after its narinfo was served", async () => {
    const irisd = await startIrisd({ storeRoot: small.root });
    const url = await narUrlOf(irisd.url, closure.top);
    await nix(["store", "delete", "--store", small.root, closure.top]);
    expect((await httpRequest(url)).status).toBe(404);
    await waitFor("the narinfo of the deleted path to be 404", async () => {
      const res = await httpRequest(`${irisd.url}/${hashPartOf(closure.top)}.narinfo`);
      return res.status === 404 ? true : undefined;
    });
  });

  it("streams ranges of a large NAR from the files", async () => {
    const irisd = await startIrisd({ storeRoot: big.root });
    const url = await narUrlOf(irisd.url, bigPath);
    const whole = await dumpIn(big.root, bigPath);
    const start = 3 * 1024 * 1024 + 17;
    const res = await httpRequest(url, { headers: { Range: `bytes=${start}-${start + 99_999}` } });
    expect(res.status).toBe(206);
    expect(res.body.equals(whole.subarray(start, start + 100_000))).toBe(true);
    const tail = await httpRequest(url, { headers: { Range: "bytes=-5000" } });
    expect(tail.body.equals(whole.subarray(-5000))).toBe(true);
  });

  it("never serves a small path whose files no longer match its NAR hash: the transfer is cut", async () => {
    const corrupt = await makeChrootStore(closure.paths, { root: path.join(dir, "corrupt") });
    await signPaths(keys, [closure.top], { store: corrupt.root });
    const irisd = await startIrisd({ storeRoot: corrupt.root });
    const url = await narUrlOf(irisd.url, closure.leaf);
    const file = path.join(corrupt.root, closure.leaf);
    const original = await readFile(file);
    // Same length, other bytes: only the hash can tell.
    await writeFile(
      file,
      Buffer.from(original.toString("latin1").replace(/[a-z]/g, "X"), "latin1"),
    );
    await expect(httpRequest(url)).rejects.toThrow();
    await waitFor("the corruption to be logged", () =>
      irisd.logs().find((l) => String(l.err).includes("the store is corrupt")),
    );
  });

  it("cuts the connection when the path vanishes mid-stream, never a complete-looking short body", async () => {
    const irisd = await startIrisd({ storeRoot: big.root });
    const { size: narSize } = await nixDumpDigest(path.join(big.root, bigPath));
    const narPathname = new URL(await narUrlOf(irisd.url, bigPath)).pathname;
    const outcome = await new Promise<{ received: number; length: number; error: string }>(
      (resolve, reject) => {
        const req = http.get(`${irisd.url}${narPathname}`, { agent: false });
        req.on("error", reject);
        req.on("response", (res) => {
          let received = 0;
          let deleted = false;
          const length = Number(res.headers["content-length"]);
          res.on("data", (chunk: Buffer) => {
            received += chunk.length;
            if (deleted) return;
            deleted = true;
            res.pause();
            // Remove the files the server has not reached yet, then read on.
            void removeDir(path.join(big.root, bigPath)).then(() => res.resume());
          });
          res.on("error", (err) => {
            resolve({ received, length, error: err.message });
          });
          res.on("aborted", () => {
            resolve({ received, length, error: "aborted" });
          });
          res.on("end", () => {
            resolve({ received, length, error: "" });
          });
        });
      },
    );
    expect(outcome.length).toBe(narSize);
    expect(outcome.error).not.toBe("");
    expect(outcome.received).toBeLessThan(narSize);
    await waitFor("the abort to be logged", () =>
      irisd.logs().find((l) => l.msg.includes("transfer aborted")),
    );
    // And the daemon keeps serving.
    expect((await httpRequest(`${irisd.url}/nix-cache-info`)).status).toBe(200);
  });
});
