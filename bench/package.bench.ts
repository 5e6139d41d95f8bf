/**
 * The package as users install it (npm, or the Nix package built from the
 * same `files`).
 *
 * 1. Size: what `npm pack` ships, and the production dependencies
 *    (`npm ls --omit=dev`, as `npm prune --omit=dev` leaves them), with
 *    better-sqlite3 as npm leaves it and as nix/package.nix keeps it (the
 *    addon alone of its build).
 * 2. `ogygia status` (local mode) run from the packed tarball, unpacked as
 *    npm installs it, side by side with `node -e ""`: the npm package ships
 *    no startup snapshot (it fits one node binary), so this is the plain
 *    CommonJS bundle. Target: within 1.5x.
 */

import { execFileSync } from "node:child_process";
import { mkdir, readdir, rm, stat, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { makeSystemRoot } from "../test/helpers/system-root.js";
import { alternate, formatMs, printTable } from "./lib-timing.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);

/** Bytes of the files under `dir`, not descending into `skip` folders. */
async function treeBytes(dir: string, skip: ReadonlySet<string> = new Set()): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!skip.has(entry.name)) total += await treeBytes(full, skip);
    } else if (entry.isFile()) {
      total += (await stat(full)).size;
    }
  }
  return total;
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

async function main(): Promise<void> {
  const work = path.join(os.tmpdir(), `ogygia-bench-package-${process.pid}`);
  await mkdir(work, { recursive: true });
  try {
    const [packed] = JSON.parse(
      execFileSync("npm", ["pack", "--json", "--pack-destination", work], {
        cwd: repo,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }),
    ) as [{ filename: string; size: number; unpackedSize: number; entryCount: number }];

    // Each production package's own files (its nested node_modules are packages of their own).
    const dirs = execFileSync("npm", ["ls", "--omit=dev", "--all", "--parseable"], {
      cwd: repo,
      encoding: "utf8",
    })
      .split("\n")
      .filter((line) => line !== "" && line !== repo);
    const unique = [...new Set(dirs)];
    let deps = 0;
    for (const dir of unique) deps += await treeBytes(dir, new Set(["node_modules"]));
    const sqlite = path.join(repo, "node_modules/better-sqlite3");
    const sqliteAll = await treeBytes(sqlite, new Set(["node_modules"]));
    const sqliteKept =
      sqliteAll -
      (await treeBytes(path.join(sqlite, "build"))) -
      (await treeBytes(path.join(sqlite, "deps"))) -
      (await treeBytes(path.join(sqlite, "src"))) +
      (await stat(path.join(sqlite, "build/Release/better_sqlite3.node"))).size;

    console.log("Size");
    printTable([
      ["what", "size"],
      [
        `npm pack: ${packed.entryCount} files`,
        `${mb(packed.size)} packed, ${mb(packed.unpackedSize)} unpacked`,
      ],
      [`production dependencies (${unique.length} packages), as npm installs them`, mb(deps)],
      [
        "  as nix/package.nix keeps them (better-sqlite3: the addon of its build)",
        mb(deps - sqliteAll + sqliteKept),
      ],
    ]);

    // The tarball unpacked where npm would put it, its dependencies beside it.
    const installed = path.join(work, "lib/node_modules/ogygia");
    await mkdir(installed, { recursive: true });
    execFileSync("tar", [
      "-xzf",
      path.join(work, packed.filename),
      "-C",
      installed,
      "--strip-components=1",
    ]);
    await symlink(path.join(repo, "node_modules"), path.join(installed, "node_modules"));
    const sys = await makeSystemRoot({ current: "a".repeat(40), booted: "a".repeat(40) });
    const env: NodeJS.ProcessEnv = { ...process.env, OGYGIA_HOSTNAME: "bench.example.com" };
    delete env.OGYGIA_CONFIG;

    console.log(`\nStart-up from the packed package (${ROUNDS * 2} alternating rounds, medians)`);
    const timings = alternate(
      {
        floor: { command: process.execPath, args: ["-e", ""] },
        packed: {
          command: process.execPath,
          args: [path.join(installed, "bin/ogygia"), "status", "--root", sys.root],
          options: { env },
        },
      },
      { rounds: ROUNDS * 2 },
    );
    const floor = timings.floor?.median ?? NaN;
    const ours = timings.packed?.median ?? NaN;
    printTable([
      ["command", "median", "ratio to floor"],
      ['node -e ""', formatMs(floor), "1.00x"],
      [
        "ogygia status (local), packed",
        formatMs(ours),
        `${(ours / floor).toFixed(2)}x (target <= 1.5x)`,
      ],
    ]);
    await sys.remove();
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
