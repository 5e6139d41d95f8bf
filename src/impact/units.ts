/**
 * What switching a host from one NixOS system to another does beyond its
 * packages: the systemd units under `etc/systemd/system` that would start,
 * stop or restart (files compared as `switch-to-configuration` compares
 * them: by content), and whether a reboot is needed (the `kernel`,
 * `initrd` or `kernel-modules` link differs, the check of nixpkgs'
 * `system.autoUpgrade` and of `ogygia publish`).
 */

import { compareText } from "../core/index.js";
import type { FileNode, StoreFiles } from "./store-files.js";

/** The links that decide whether a switch needs a reboot. */
export const BOOT_LINKS = ["kernel", "initrd", "kernel-modules"] as const;

export interface UnitChanges {
  start: string[];
  stop: string[];
  restart: string[];
}

export interface SystemChanges {
  units: UnitChanges;
  reboot: boolean;
  /** The boot links that differ. */
  bootLinksChanged: string[];
}

const UNIT_SUFFIX = /\.(service|socket|timer|mount|automount|swap|target|path|slice|scope)$/;
/** Directories beside units that only wire dependencies. */
const WIRING_DIR = /\.(wants|requires|upholds)$/;

/** One unit's identity: where its file resolves, and its content (computed on demand). */
interface UnitEntry {
  /** The resolved store path of the file (or directory), or the link target leaving the store. */
  where: string;
  node: FileNode | undefined;
}

async function unitEntries(files: StoreFiles, system: string): Promise<Map<string, UnitEntry>> {
  const dir = await files.resolve(`${system}/etc/systemd/system`);
  const out = new Map<string, UnitEntry>();
  if (dir?.node.type !== "directory") return out;
  await Promise.all(
    dir.node.entries.map(async (name) => {
      if (WIRING_DIR.test(name)) return;
      const unit = name.endsWith(".d") ? name.slice(0, -2) : name;
      if (!UNIT_SUFFIX.test(unit)) return;
      const logical = `${dir.path}/${name}`;
      const resolved = await files.resolve(logical);
      let where: string;
      if (resolved === undefined) {
        // A link out of the store (`/dev/null`: a masked unit) or dangling: its target is its identity.
        const raw = await files.node(logical);
        where = raw?.type === "symlink" ? `-> ${raw.target}` : "missing";
      } else {
        where = resolved.path;
      }
      const key = name.endsWith(".d") ? `${unit}\u0000d` : unit;
      out.set(key, { where, node: resolved?.node });
    }),
  );
  return out;
}

/** A digest of a node's content: a file's SHA-256, a directory's entries and their contents. */
async function contentOf(
  files: StoreFiles,
  where: string,
  node: FileNode | undefined,
): Promise<string> {
  if (node === undefined) return where;
  if (node.type === "regular") return node.sha256;
  if (node.type === "symlink") return `-> ${node.target}`;
  const parts = await Promise.all(
    node.entries.map(async (name) => {
      const child = await files.resolve(`${where}/${name}`);
      return `${name}=${await contentOf(files, child?.path ?? "", child?.node)}`;
    }),
  );
  return parts.join("\n");
}

async function bootLink(files: StoreFiles, system: string, link: string): Promise<string | null> {
  const node = await files.node(`${system}/${link}`);
  return node?.type === "symlink" ? node.target : null;
}

/** Compares two systems' units and boot links. */
export async function systemChanges(
  files: StoreFiles,
  before: string,
  after: string,
): Promise<SystemChanges> {
  const [old, neu, oldBoot, newBoot] = await Promise.all([
    unitEntries(files, before),
    unitEntries(files, after),
    Promise.all(BOOT_LINKS.map((link) => bootLink(files, before, link))),
    Promise.all(BOOT_LINKS.map((link) => bootLink(files, after, link))),
  ]);
  const start = new Set<string>();
  const stop = new Set<string>();
  const restart = new Set<string>();
  const unitOf = (key: string): string => key.split("\u0000")[0] ?? key;
  const unitNames = (entries: Map<string, UnitEntry>): Set<string> =>
    new Set([...entries.keys()].filter((k) => !k.includes("\u0000")));
  const oldUnits = unitNames(old);
  const newUnits = unitNames(neu);
  for (const unit of newUnits) if (!oldUnits.has(unit)) start.add(unit);
  for (const unit of oldUnits) if (!newUnits.has(unit)) stop.add(unit);
  const keys = new Set([...old.keys(), ...neu.keys()]);
  await Promise.all(
    [...keys].map(async (key) => {
      const unit = unitOf(key);
      if (start.has(unit) || stop.has(unit)) return;
      const a = old.get(key);
      const b = neu.get(key);
      if (a !== undefined && a.where === b?.where) return;
      if (a === undefined || b === undefined) {
        // An override directory came or went: the unit restarts with it.
        restart.add(unit);
        return;
      }
      const [ca, cb] = await Promise.all([
        contentOf(files, a.where, a.node),
        contentOf(files, b.where, b.node),
      ]);
      if (ca !== cb) restart.add(unit);
    }),
  );
  const bootLinksChanged = BOOT_LINKS.filter((_, i) => oldBoot[i] !== newBoot[i]);
  return {
    units: {
      start: [...start].sort(compareText),
      stop: [...stop].sort(compareText),
      restart: [...restart].sort(compareText),
    },
    reboot: bootLinksChanged.length > 0,
    bootLinksChanged,
  };
}
