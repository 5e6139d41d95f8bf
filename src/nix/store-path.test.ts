import { describe, expect, it } from "vitest";

import { OgygiaError } from "../core/index.js";
import { parseHash } from "./hash.js";
import {
  isStorePath,
  makeStorePath,
  parseStorePath,
  parseStorePathBaseName,
  physicalPath,
  realStoreDir,
  sortStorePaths,
  storeDbPath,
  storeLocation,
  storePathNameProblem,
} from "./store-path.js";

const HASH = "6c3c4dx6b7wndjn5h3qs3h4bpkaxhp3g";

describe("store paths", () => {
  it("splits a store path into hash part and name", () => {
    const p = parseStorePath(`/nix/store/${HASH}-hello-2.12.1`);
    expect(p).toEqual({
      path: `/nix/store/${HASH}-hello-2.12.1`,
      baseName: `${HASH}-hello-2.12.1`,
      hashPart: HASH,
      name: "hello-2.12.1",
    });
    expect(parseStorePathBaseName(`${HASH}-x`, "/other/store").path).toBe(`/other/store/${HASH}-x`);
  });

  it("accepts every character Nix allows in names, dotfiles and 211-character names", () => {
    for (const name of ["a+b-c.d_e?f=g", "ABC", ".gitignore", "..foo", "x".repeat(211), "-a"]) {
      expect(storePathNameProblem(name), name).toBeUndefined();
      expect(isStorePath(`/nix/store/${HASH}-${name}`)).toBe(true);
    }
  });

  it("rejects bad names, hash parts and paths, saying why", () => {
    const cases: [string, RegExp][] = [
      [`/nix/store/${HASH}-`, /too short/],
      [`/nix/store/${HASH}-a b`, /illegal character ' '/],
      [`/nix/store/${HASH}-a/b`, /inside a store path/],
      [`/nix/store/${HASH}-${"x".repeat(212)}`, /longer than 211/],
      [`/nix/store/${HASH}-.`, /first component is '.'/],
      [`/nix/store/${HASH}-..`, /first component is '..'/],
      [`/nix/store/${HASH}-..-x`, /first component is '..'/],
      [`/nix/store/${HASH}-.-x`, /first component is '.'/],
      [`/nix/store/${HASH}-é`, /illegal character/],
      [`/nix/store/${HASH.slice(0, 31)}e-x`, /not nix32/],
      [`/nix/store/${HASH.toUpperCase()}-x`, /not nix32/],
      [`/nix/store/${HASH}_x`, /no '-' after/],
      [`/nix/store/x`, /too short/],
      [`/gnu/store/${HASH}-x`, /not in \/nix\/store/],
      [`/nix/store`, /not in/],
    ];
    for (const [text, reason] of cases) {
      expect(() => parseStorePath(text), text).toThrow(reason);
      expect(() => parseStorePath(text)).toThrow(OgygiaError);
    }
  });

  it("keeps the logical store directory apart from a chroot store's physical root", () => {
    const chroot = storeLocation({ root: "/tmp/x/" });
    expect(chroot).toEqual({ storeDir: "/nix/store", root: "/tmp/x" });
    expect(realStoreDir(chroot)).toBe("/tmp/x/nix/store");
    expect(storeDbPath(chroot)).toBe("/tmp/x/nix/var/nix/db/db.sqlite");
    expect(physicalPath(chroot, `/nix/store/${HASH}-top`)).toBe(`/tmp/x/nix/store/${HASH}-top`);
    expect(physicalPath(chroot, `/nix/store/${HASH}-top/bin/sh`)).toBe(
      `/tmp/x/nix/store/${HASH}-top/bin/sh`,
    );
    const machine = storeLocation();
    expect(realStoreDir(machine)).toBe("/nix/store");
    expect(storeDbPath(machine)).toBe("/nix/var/nix/db/db.sqlite");
    expect(() => physicalPath(chroot, `/nix/store/${HASH}-top/../../etc`)).toThrow(/'\.\.'/);
    expect(() => physicalPath(chroot, "/etc/passwd")).toThrow(OgygiaError);
    expect(() => storeLocation({ root: "relative" })).toThrow(/not absolute/);
  });

  it("computes store paths as Nix's makeStorePath (nix-store --add of a tree)", () => {
    // nix-store --add of a directory: fixed:r:sha256 over its NAR.
    const narHash = parseHash("sha256:0l3163ffabgwv6vm3hzpgp74dfgqa9gl6qp16mjw1xq796m8zxnk");
    expect(makeStorePath("source", narHash, "catree")).toBe(
      "/nix/store/n1gqkrv0njv9y5b718d25lb2qw53f9as-catree",
    );
  });

  it("sorts and deduplicates like a StorePathSet", () => {
    expect(
      sortStorePaths([
        `/nix/store/b${HASH.slice(1)}-x`,
        `/nix/store/${HASH}-y`,
        `/nix/store/${HASH}-y`,
      ]),
    ).toEqual([`/nix/store/${HASH}-y`, `/nix/store/b${HASH.slice(1)}-x`]);
  });
});
