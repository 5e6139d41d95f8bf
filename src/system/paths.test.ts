import { mkdir, rename, symlink, writeFile } from "node:fs/promises";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { displayPathInRoot, resolveInRoot, resolveInRootSync, type LinkMemo } from "./paths.js";
import { tempDir } from "../../test/support/temp.js";

async function makeRoot(): Promise<string> {
  return tempDir("root");
}

describe("resolveInRoot", () => {
  it("returns the path unchanged for the real root", async () => {
    expect(await resolveInRoot("/", "/run/current-system/sw")).toBe("/run/current-system/sw");
  });

  it("follows absolute symlinks inside the root, not on the host", async () => {
    const root = await makeRoot();
    await mkdir(path.join(root, "nix/store/abc-system/sw/share"), { recursive: true });
    await mkdir(path.join(root, "run"));
    await symlink("/nix/store/abc-system", path.join(root, "run/current-system"));
    expect(await resolveInRoot(root, "/run/current-system/sw/share")).toBe(
      path.join(root, "nix/store/abc-system/sw/share"),
    );
  });

  it("follows chains of relative and absolute links (a system profile)", async () => {
    const root = await makeRoot();
    await mkdir(path.join(root, "nix/store/def-system"), { recursive: true });
    await mkdir(path.join(root, "nix/var/nix/profiles"), { recursive: true });
    await symlink("system-2-link", path.join(root, "nix/var/nix/profiles/system"));
    await symlink("/nix/store/def-system", path.join(root, "nix/var/nix/profiles/system-2-link"));
    await writeFile(path.join(root, "nix/store/def-system/marker"), "x");
    expect(await resolveInRoot(root, "/nix/var/nix/profiles/system/marker")).toBe(
      path.join(root, "nix/store/def-system/marker"),
    );
  });

  it("never escapes the root through '..' or absolute targets", async () => {
    const root = await makeRoot();
    await mkdir(path.join(root, "run"));
    await symlink("../../../../../../etc", path.join(root, "run/escape"));
    expect(await resolveInRoot(root, "/run/escape/passwd")).toBe(path.join(root, "etc/passwd"));
  });

  it("stops a symlink loop with ELOOP", async () => {
    const root = await makeRoot();
    await symlink("/b", path.join(root, "a"));
    await symlink("/a", path.join(root, "b"));
    await expect(resolveInRoot(root, "/a/file")).rejects.toMatchObject({ code: "ELOOP" });
  });

  it("leaves a missing component for the reader to report", async () => {
    const root = await makeRoot();
    expect(await resolveInRoot(root, "/run/booted-system/sw")).toBe(
      path.join(root, "run/booted-system/sw"),
    );
  });
});

describe("resolveInRootSync with a memo", () => {
  it("asks each path once per memo: a link changed after the first read is seen by a new memo only", async () => {
    const root = await makeRoot();
    await mkdir(path.join(root, "nix/store/old-system/sw"), { recursive: true });
    await mkdir(path.join(root, "nix/store/new-system/sw"), { recursive: true });
    await mkdir(path.join(root, "run"));
    await symlink("/nix/store/old-system", path.join(root, "run/current-system"));
    const memo: LinkMemo = new Map();
    expect(resolveInRootSync(root, "/run/current-system/sw", memo)).toBe(
      path.join(root, "nix/store/old-system/sw"),
    );
    expect(memo.get(path.join(root, "run/current-system"))).toBe("/nix/store/old-system");
    expect(memo.get(path.join(root, "nix/store/old-system"))).toBe(false);

    await symlink("/nix/store/new-system", path.join(root, "run/next"));
    await rename(path.join(root, "run/next"), path.join(root, "run/current-system"));
    expect(resolveInRootSync(root, "/run/current-system/sw", memo)).toBe(
      path.join(root, "nix/store/old-system/sw"),
    );
    expect(resolveInRootSync(root, "/run/current-system/sw", new Map())).toBe(
      path.join(root, "nix/store/new-system/sw"),
    );
    expect(resolveInRootSync(root, "/run/current-system/sw")).toBe(
      path.join(root, "nix/store/new-system/sw"),
    );
  });

  it("remembers a missing path, and resolves relative links and '..' as without one", async () => {
    const root = await makeRoot();
    await mkdir(path.join(root, "a/b"), { recursive: true });
    await symlink("../b", path.join(root, "a/b/up"));
    const memo: LinkMemo = new Map();
    expect(resolveInRootSync(root, "/a/b/up/../b/missing/x", memo)).toBe(
      path.join(root, "a/b/missing/x"),
    );
    expect(memo.get(path.join(root, "a/b/missing"))).toBeNull();
    expect(resolveInRootSync(root, "/a/b/up/../b/missing/x")).toBe(
      path.join(root, "a/b/missing/x"),
    );
  });
});

describe("displayPathInRoot", () => {
  it("shows system paths under --root", () => {
    expect(displayPathInRoot("/", "/run/current-system")).toBe("/run/current-system");
    expect(displayPathInRoot("/mnt/", "/run/current-system")).toBe("/mnt/run/current-system");
  });
});
