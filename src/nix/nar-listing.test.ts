import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { dirNode, fileNode, makeTempDir, nar, symlinkNode } from "../../test/support/nix.js";
import { narStream } from "./nar-dump.js";
import { narListingFromNar, narListingOfPath, renderNarListing } from "./nar-listing.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function tempDir(): string {
  const { dir, cleanup } = makeTempDir("nar-listing");
  cleanups.push(cleanup);
  return dir;
}

describe("NAR listings", () => {
  it("renders Nix's JSON: key order, narOffset of the contents, no spaces", async () => {
    const bytes = nar(
      dirNode([
        ["a", fileNode("hello\n")],
        ["b", dirNode([["x", fileNode(Buffer.alloc(9), true)]])],
        ["c", symlinkNode("a")],
      ]),
    );
    const root = await narListingFromNar([bytes], "test");
    const text = renderNarListing(root).toString("utf8");
    expect(text).toBe(
      '{"version":1,"root":{"type":"directory","entries":{' +
        '"a":{"type":"regular","size":6,"narOffset":232},' +
        '"b":{"type":"directory","entries":{"x":{"type":"regular","size":9,"executable":true,"narOffset":592}}},' +
        '"c":{"type":"symlink","target":"a"}}}}',
    );
    // The offsets point at the contents.
    expect(bytes.subarray(232, 238).toString()).toBe("hello\n");
    expect(bytes.subarray(592, 601)).toEqual(Buffer.alloc(9));
  });

  it("lists a tree on disk exactly as its NAR, without reading contents", async () => {
    const dir = path.join(tempDir(), "tree");
    mkdirSync(path.join(dir, "sub/deeper"), { recursive: true });
    writeFileSync(path.join(dir, "empty"), "");
    writeFileSync(path.join(dir, "sub/run"), "#!/bin/sh\necho hi\n");
    chmodSync(path.join(dir, "sub/run"), 0o755);
    writeFileSync(path.join(dir, "sub/deeper/big"), Buffer.alloc(70_000, 7));
    writeFileSync(path.join(dir, 'odd "name"\twith\x01bytes é'), "x");
    symlinkSync("sub/run", path.join(dir, "link"));
    const fromDisk = narListingOfPath(dir);
    const fromNar = await narListingFromNar(narStream(dir), "tree");
    expect(renderNarListing(fromDisk.root).toString("latin1")).toBe(
      renderNarListing(fromNar).toString("latin1"),
    );
    expect(renderNarListing(fromDisk.root).toString("utf8")).toContain(
      '"odd \\"name\\"\\twith\\u0001bytes é":',
    );
    let size = 0;
    for await (const chunk of narStream(dir)) size += chunk.length;
    expect(fromDisk.narSize).toBe(size);
  });

  it("lists a single file and a single symlink", () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, "f"), "data");
    symlinkSync("/nix/store/x", path.join(dir, "l"));
    expect(renderNarListing(narListingOfPath(path.join(dir, "f")).root).toString()).toBe(
      '{"version":1,"root":{"type":"regular","size":4,"narOffset":96}}',
    );
    expect(renderNarListing(narListingOfPath(path.join(dir, "l")).root).toString()).toBe(
      '{"version":1,"root":{"type":"symlink","target":"/nix/store/x"}}',
    );
  });

  it("refuses a NAR that does not parse", async () => {
    await expect(narListingFromNar([Buffer.from("garbage!")], "bad")).rejects.toThrow(
      /invalid NAR/,
    );
  });
});
