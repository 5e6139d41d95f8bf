import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { displayPathInRoot, resolveInRoot } from "./paths.js";
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

describe("displayPathInRoot", () => {
  it("shows system paths under --root", () => {
    expect(displayPathInRoot("/", "/run/current-system")).toBe("/run/current-system");
    expect(displayPathInRoot("/mnt/", "/run/current-system")).toBe("/mnt/run/current-system");
  });
});
