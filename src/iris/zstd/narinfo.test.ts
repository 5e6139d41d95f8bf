import { createHash, randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import type { Writable } from "node:stream";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { QUIET_LOG } from "../../../test/support/p2p.js";
import { formatHash, hashFromDigest, renderNarInfo } from "../../nix/index.js";
import { createResolverChain, type PathResolver, type ServedNar } from "../http/index.js";
import { openCompressedNars, type CompressedNars } from "./compressed-nars.js";
import { zstdCompression } from "./narinfo.js";
import { tempDir } from "../../../test/support/temp.js";

const HASH_PART = "0".repeat(31) + "1";
const STORE_PATH = `/nix/store/${HASH_PART}-slow`;
const nar = randomBytes(200_000);
const narHash = hashFromDigest("sha256", createHash("sha256").update(nar).digest());
const narHashText = formatHash(narHash, "nix32", false);

let dir: string;
let store: CompressedNars;

beforeEach(async () => {
  dir = await tempDir("zstd-narinfo");
  store = await openCompressedNars({ dir, maxBytes: 1e9, timeToIdleMs: 3_600_000, log: QUIET_LOG });
});

afterEach(async () => {
  store.close();
  await rm(dir, { recursive: true, force: true });
});

/** A resolver whose NAR is sent once `gate` resolves. */
function gatedResolver(gate: Promise<void>): PathResolver {
  const body = Buffer.from(
    renderNarInfo({
      storePath: STORE_PATH,
      url: `nar/${HASH_PART}-${narHashText}.nar`,
      compression: "none",
      narHash,
      narSize: nar.length,
      references: [],
      sigs: [],
    }),
  );
  const served: ServedNar = {
    storePath: STORE_PATH,
    narSize: nar.length,
    narHash: narHashText,
    source: "test",
    async send(out: Writable) {
      await gate;
      out.end(nar);
    },
  };
  return {
    name: "test",
    local: true,
    narInfo: (hashPart) =>
      hashPart === HASH_PART ? { storePath: STORE_PATH, body, source: "test" } : undefined,
    nar: (hashPart, hash) => (hashPart === HASH_PART && hash === narHashText ? served : undefined),
  };
}

describe("zstdCompression", () => {
  it("a client's narinfo waits for the compression; a peer's does not wait past peerWaitMs", async () => {
    let open = (): void => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const chain = createResolverChain([gatedResolver(gate)]);
    const compression = zstdCompression({
      chain,
      store,
      storeDir: "/nix/store",
      log: QUIET_LOG,
      peerWaitMs: 50,
    });
    const plain = chain.narInfo(HASH_PART);
    if (plain === undefined || plain instanceof Promise) throw new Error("expected a narinfo");
    const forPeer = await compression.narInfo(plain, HASH_PART, { localOnly: true });
    expect(forPeer.body.toString()).toContain("Compression: none");
    open();
    const forClient = await compression.narInfo(plain, HASH_PART, {});
    const text = forClient.body.toString();
    expect(text).toContain("Compression: zstd");
    expect(text).toContain(`URL: nar/${HASH_PART}-${narHashText}.nar.zst`);
    // Compressed once, now kept: the peer gets it too.
    const again = await compression.narInfo(plain, HASH_PART, { localOnly: true });
    expect(again.body.toString()).toContain("Compression: zstd");
    const file = await compression.nar(HASH_PART, narHashText, {});
    expect(file?.narSize).toBe(store.get(narHashText)?.fileSize);
    expect(await compression.nar(HASH_PART, "1".repeat(52), {})).toBeUndefined();
  });
});
