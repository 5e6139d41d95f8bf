/**
 * A fake NixOS root for `--root`: system closures under `<root>/nix/store`
 * with a `sw/share/ogygia/build-revision` file each, and the three state
 * links pointing at them exactly as on a real host (absolute targets,
 * the system profile through a `system-N-link` generation).
 */

import { createHash } from "node:crypto";
import { chmod, mkdir, rename, symlink, unlink, writeFile } from "node:fs/promises";
import path from "node:path";

import { removeDir, tempDir } from "./process.js";

export type StateName = "current" | "booted" | "nextboot";

export interface SystemRoot {
  root: string;
  /**
   * Points `state` at a new system closure built from `revision` (null: a
   * closure without a revision file; undefined: remove the link). The link is
   * replaced atomically, by rename, as `switch-to-configuration` does.
   */
  setState(state: StateName, revision: string | null | undefined): Promise<void>;
  /**
   * Points `current` at a new system holding `revision` and, at the default
   * configuration path, `text`. Returns the file's path on disk.
   */
  writeDefaultConfig(text: string, revision: string | null): Promise<string>;
  remove(): Promise<void>;
}

let generation = 0;

function fakeHash(seed: string): string {
  const alphabet = "0123456789abcdfghijklmnpqrsvwxyz";
  const digest = createHash("sha256").update(seed).digest();
  return Array.from(digest.subarray(0, 32), (b) => alphabet[b % 32]).join("");
}

async function replaceLink(linkPath: string, target: string): Promise<void> {
  const temp = `${linkPath}.tmp-${process.pid}-${generation}`;
  await symlink(target, temp);
  await rename(temp, linkPath);
}

export async function makeSystemRoot(
  states: Partial<Record<StateName, string | null>> = {},
): Promise<SystemRoot> {
  const root = await tempDir("root");
  // Readable by any user, so tests can run the CLI unprivileged.
  await chmod(root, 0o755);
  await mkdir(path.join(root, "run"), { recursive: true });
  await mkdir(path.join(root, "nix/var/nix/profiles"), { recursive: true });
  await mkdir(path.join(root, "nix/store"), { recursive: true });

  const makeSystem = async (revision: string | null): Promise<string> => {
    generation += 1;
    const name = `${fakeHash(`${root}-${generation}`)}-nixos-system-test-${generation}`;
    const share = path.join(root, "nix/store", name, "sw/share/ogygia");
    await mkdir(share, { recursive: true });
    if (revision !== null) await writeFile(path.join(share, "build-revision"), `${revision}\n`);
    return `/nix/store/${name}`;
  };

  const linkFor = (state: StateName): string =>
    state === "nextboot"
      ? path.join(root, "nix/var/nix/profiles/system")
      : path.join(root, "run", state === "current" ? "current-system" : "booted-system");

  const setState = async (state: StateName, revision: string | null | undefined): Promise<void> => {
    const link = linkFor(state);
    if (revision === undefined) {
      await unlink(link).catch(() => undefined);
      return;
    }
    const system = await makeSystem(revision);
    if (state === "nextboot") {
      const genLink = `system-${generation}-link`;
      await symlink(system, path.join(root, "nix/var/nix/profiles", genLink));
      await replaceLink(link, genLink);
    } else {
      await replaceLink(link, system);
    }
  };

  for (const [state, revision] of Object.entries(states) as [StateName, string | null][]) {
    await setState(state, revision);
  }

  return {
    root,
    setState,
    async writeDefaultConfig(text, revision) {
      const system = await makeSystem(revision);
      const file = path.join(root, system, "sw/share/ogygia/config.toml");
      await writeFile(file, text);
      await replaceLink(linkFor("current"), system);
      return file;
    },
    remove: () => removeDir(root),
  };
}

/**
 * Writes a config file in a fresh temporary folder and returns its path. The
 * folder is removed with the test file's other temporary folders
 * (test/helpers/temp.ts).
 */
export async function writeConfig(text: string): Promise<string> {
  const dir = await tempDir("config");
  await chmod(dir, 0o755);
  const file = path.join(dir, "config.toml");
  await writeFile(file, text);
  return file;
}
