import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { OgygiaError } from "../core/index.js";
import { narStream } from "./nar-dump.js";
import { parseNar } from "./nar-parse.js";
import { restoreNar } from "./nar-restore.js";
import {
  chunked,
  dirNode,
  fileNode,
  makeTempDir,
  nar,
  prng,
  randomInt,
  symlinkNode,
} from "../../test/support/nix.js";

// Fixed seeds: a failure names its seed and iteration, and reproduces.
const SEED = 0x5eed_0001;

const BASES = [
  nar(fileNode("hello world")),
  nar(symlinkNode("../target")),
  nar(
    dirNode([
      ["a", fileNode("one", true)],
      [
        "b",
        dirNode([
          ["c", symlinkNode("../a")],
          ["d", dirNode([])],
        ]),
      ],
      ["e", fileNode("x".repeat(40))],
      ["f", fileNode("")],
    ]),
  ),
  nar(dirNode([["dir", dirNode([["sub", dirNode([["file", fileNode("deep")]])]])]])),
];

/** One to three random edits: bit flips, length rewrites, cuts, copies, insertions, swaps. */
function mutate(input: Buffer, random: () => number): Buffer {
  let bytes = Buffer.from(input);
  const edits = 1 + randomInt(random, 3);
  for (let e = 0; e < edits && bytes.length > 0; e++) {
    const at = randomInt(random, bytes.length);
    switch (randomInt(random, 8)) {
      case 0:
        bytes[at] = (bytes[at] ?? 0) ^ (1 << randomInt(random, 8));
        break;
      case 1:
        bytes[at] = randomInt(random, 256);
        break;
      case 2: {
        // A length field: small, off-by-some, or absurd.
        const word = at - (at % 8);
        if (word + 8 > bytes.length) break;
        const choices = [randomInt(random, 300), 0, 1, 0xffffffff, randomInt(random, 1 << 20)];
        bytes.writeUInt32LE(choices[randomInt(random, choices.length)] ?? 0, word);
        if (random() < 0.2) bytes.writeUInt32LE(randomInt(random, 1 << 22), word + 4);
        break;
      }
      case 3:
        bytes = bytes.subarray(0, at);
        break;
      case 4: {
        const end = Math.min(bytes.length, at + 1 + randomInt(random, 40));
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(end)]);
        break;
      }
      case 5: {
        const end = Math.min(bytes.length, at + 1 + randomInt(random, 64));
        const copy = bytes.subarray(at, end);
        const to = randomInt(random, bytes.length);
        bytes = Buffer.concat([bytes.subarray(0, to), copy, bytes.subarray(to)]);
        break;
      }
      case 6: {
        const junk = Buffer.from(
          Array.from({ length: 1 + randomInt(random, 16) }, () => randomInt(random, 256)),
        );
        bytes = Buffer.concat([bytes.subarray(0, at), junk, bytes.subarray(at)]);
        break;
      }
      default: {
        const a = at - (at % 8);
        const other = randomInt(random, bytes.length);
        const b = other - (other % 8);
        if (a + 8 > bytes.length || b + 8 > bytes.length) break;
        const saved = Buffer.from(bytes.subarray(a, a + 8));
        bytes.copy(bytes, a, b, b + 8);
        saved.copy(bytes, b);
        break;
      }
    }
  }
  return bytes;
}

async function dump(root: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of narStream(root)) parts.push(chunk);
  return Buffer.concat(parts);
}

function expectNarError(err: unknown, context: string): void {
  if (!(err instanceof OgygiaError) || err.code !== "ERR_OGYGIA_NIX_NAR") {
    throw new Error(`${context}: expected ERR_OGYGIA_NIX_NAR, got ${String(err)}`, {
      cause: err,
    });
  }
}

describe("NAR parser and restorer under random mutations", () => {
  let tmp: { dir: string; cleanup: () => void };
  beforeAll(() => {
    tmp = makeTempDir("nar-fuzz");
  });
  afterAll(() => {
    tmp.cleanup();
  });

  it("the parser returns a tree or an ERR_OGYGIA_NIX_NAR error, never anything else", async () => {
    const random = prng(SEED);
    let accepted = 0;
    for (let i = 0; i < 4000; i++) {
      const base = BASES[i % BASES.length] ?? Buffer.alloc(0);
      const input = mutate(base, random);
      const pieces = chunked(input, [1 + randomInt(random, 64)]);
      try {
        await parseNar(pieces, () => undefined);
        accepted += 1;
      } catch (err) {
        expectNarError(err, `seed ${SEED} iteration ${i}`);
      }
    }
    // Some mutations (e.g. of file bytes) leave a valid archive; most do not.
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(4000);
  });

  it("restoring writes only inside the target, and what it accepts round-trips exactly", async () => {
    const random = prng(SEED + 1);
    const sandbox = path.join(tmp.dir, "sandbox");
    const outside = path.join(tmp.dir, "outside");
    mkdirSync(sandbox);
    mkdirSync(outside);
    writeFileSync(path.join(outside, "sentinel"), "untouched");
    let restored = 0;
    for (let i = 0; i < 1200; i++) {
      const base = BASES[i % BASES.length] ?? Buffer.alloc(0);
      const input = mutate(base, random);
      const target = path.join(sandbox, "t");
      const context = `seed ${SEED + 1} iteration ${i}`;
      let failure: unknown;
      try {
        await restoreNar(chunked(input, [1 + randomInt(random, 100)]), target);
      } catch (err) {
        failure = err ?? new Error("undefined thrown");
      }
      if (failure === undefined) {
        restored += 1;
        expect(readdirSync(sandbox), context).toEqual(["t"]);
        expect((await dump(target)).equals(input), `${context}: round trip`).toBe(true);
        rmSync(target, { recursive: true });
      } else {
        expectNarError(failure, context);
        expect(readdirSync(sandbox), `${context}: leftovers`).toEqual([]);
      }
      expect(readdirSync(tmp.dir).sort(), context).toEqual(["outside", "sandbox"]);
      expect(readdirSync(outside), context).toEqual(["sentinel"]);
    }
    expect(restored).toBeGreaterThan(0);
  });
});
