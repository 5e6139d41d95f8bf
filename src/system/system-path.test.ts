import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { isSystemStorePath, readSystemPath } from "./system-path.js";
import { tempDirSync } from "../../test/support/temp.js";

const SYSTEM = "/nix/store/0c2g1lqlkpn6gyxxk6cyqk0m1yhirw5a-nixos-system-web01-23.05";
let root: string | undefined;

function makeRoot(): string {
  root = tempDirSync("system-path");
  mkdirSync(path.join(root, "run"));
  mkdirSync(path.join(root, "nix/var/nix/profiles"), { recursive: true });
  return root;
}

afterEach(() => {
  if (root !== undefined) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

describe("readSystemPath", () => {
  it("follows the state link and the profile's generation link into the store", () => {
    const dir = makeRoot();
    mkdirSync(path.join(dir, SYSTEM), { recursive: true });
    symlinkSync(SYSTEM, path.join(dir, "run/current-system"));
    symlinkSync(SYSTEM, path.join(dir, "nix/var/nix/profiles/system-7-link"));
    symlinkSync("system-7-link", path.join(dir, "nix/var/nix/profiles/system"));
    expect(readSystemPath(dir, "current")).toEqual({
      state: "current",
      storePath: SYSTEM,
      problem: undefined,
    });
    expect(readSystemPath(dir, "nextboot").storePath).toBe(SYSTEM);
    expect(readSystemPath(dir, "booted").storePath).toBeNull();
  });

  it("is unknown when the link leads to a store path that is not there, or outside the store", () => {
    const dir = makeRoot();
    symlinkSync(SYSTEM, path.join(dir, "run/current-system"));
    symlinkSync("/etc", path.join(dir, "run/booted-system"));
    expect(readSystemPath(dir, "current").storePath).toBeNull();
    expect(readSystemPath(dir, "booted").storePath).toBeNull();
  });

  it("accepts only paths directly under /nix/store with a nix32 hash", () => {
    expect(isSystemStorePath(SYSTEM)).toBe(true);
    expect(isSystemStorePath(`${SYSTEM}/sw`)).toBe(false);
    expect(isSystemStorePath("/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x")).toBe(false);
    expect(isSystemStorePath("/nix/store/0c2g1lqlkpn6gyxxk6cyqk0m1yhirw5a-a\nb")).toBe(false);
  });
});
