/**
 * ogygia-irisd as a complete binary cache for a real Nix 2.8 client: what
 * Nix expects of a read-only cache (`nix copy --to` fails with our message,
 * unknown NAR names are 404), `/health` and `/version`.
 */

import { writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { httpRequest, startIrisd, stopAllIrisd, type IrisdProcess } from "./helpers/irisd.js";
import {
  addToStore,
  nixCopy,
  signedClosureStore,
  uniqueSalt,
  type SignedClosureStore,
} from "./helpers/nix.js";
import { removeDir, tempDir } from "./helpers/process.js";

let dir: string;
let fixture: SignedClosureStore;
let irisd: IrisdProcess;

beforeAll(async () => {
  dir = await tempDir("iris-complete");
  fixture = await signedClosureStore(dir, "iris-complete");
  irisd = await startIrisd({ storeRoot: fixture.store.root });
}, 120_000);

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
