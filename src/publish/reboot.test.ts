import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { readBootLinks, rebootRequired, type BootLinks } from "./reboot.js";
import { tempDir } from "../../test/support/temp.js";

const links = (
  kernel: string | null,
  initrd: string | null,
  modules: string | null,
): BootLinks => ({
  kernel,
  initrd,
  "kernel-modules": modules,
});

describe("rebootRequired", () => {
  const base = links("/nix/store/k1-linux/bzImage", "/nix/store/i1-initrd/initrd", "/nix/store/m1");

  it("is false when kernel, initrd and modules are the same", () => {
    expect(rebootRequired(base, { ...base })).toBe(false);
  });

  it("is true when any one of the three differs", () => {
    expect(rebootRequired(base, { ...base, kernel: "/nix/store/k2-linux/bzImage" })).toBe(true);
    expect(rebootRequired(base, { ...base, initrd: "/nix/store/i2-initrd/initrd" })).toBe(true);
    expect(rebootRequired(base, { ...base, "kernel-modules": "/nix/store/m2" })).toBe(true);
  });

  it("treats a link present on one side only as a difference", () => {
    expect(rebootRequired(base, { ...base, initrd: null })).toBe(true);
  });

  it("is false when neither system has the links (a container)", () => {
    expect(rebootRequired(links(null, null, null), links(null, null, null))).toBe(false);
  });

  it("is unknown when either system is missing", () => {
    expect(rebootRequired(null, base)).toBeNull();
    expect(rebootRequired(base, null)).toBeNull();
  });
});

describe("readBootLinks", () => {
  it("reads raw link targets inside the system, following the state link under the root", async () => {
    const root = await tempDir("reboot");
    const system = path.join(root, "nix/store/aaaa-nixos-system");
    await mkdir(system, { recursive: true });
    await symlink("/nix/store/kkkk-linux-6.1/bzImage", path.join(system, "kernel"));
    await symlink("/nix/store/iiii-initrd/initrd", path.join(system, "initrd"));
    await writeFile(path.join(system, "kernel-modules"), "a file, not a link");
    await mkdir(path.join(root, "run"));
    await symlink("/nix/store/aaaa-nixos-system", path.join(root, "run/booted-system"));
    expect(await readBootLinks(root, "/run/booted-system")).toEqual({
      links: links("/nix/store/kkkk-linux-6.1/bzImage", "/nix/store/iiii-initrd/initrd", null),
      problem: undefined,
    });
  });

  it("reports a missing system as unknown without a problem", async () => {
    const root = await tempDir("reboot");
    expect(await readBootLinks(root, "/nix/var/nix/profiles/system")).toEqual({
      links: null,
      problem: undefined,
    });
  });
});
