/**
 * Files inside store paths, wherever the path is: read from the local store
 * when it holds the path, else from the path's NAR through ogygia-irisd
 * (decoded in memory: file contents are kept as SHA-256 digests only).
 * Symbolic links are followed across store paths, as a running system
 * would follow them.
 */

import { createHash } from "node:crypto";
import { lstat, readFile, readdir, readlink } from "node:fs/promises";
import path from "node:path";

import { OgygiaError, errorMessage, hasErrorCode } from "../core/index.js";
import {
  createNarParser,
  parseNarInfo,
  parseStorePath,
  physicalPath,
  storeLocation,
  type StoreDb,
} from "../nix/index.js";
import type { IrisdClient } from "./http.js";

export type FileNode =
  | { type: "directory"; entries: string[] }
  | { type: "regular"; sha256: string }
  | { type: "symlink"; target: string };

export interface StoreFilesOptions {
  /** The local store's database (its location says where the files are), when there is one. */
  store: StoreDb | undefined;
  irisd: IrisdClient;
  /** Largest NAR read through irisd (default 256 MiB). */
  maxNarBytes?: number;
}

const STORE_DIR = "/nix/store";
const MAX_HOPS = 40;
const MAX_NARINFO_BYTES = 1024 * 1024;

/** Splits `/nix/store/<base>/rest` into the store path and the rest ("" for the top). */
function splitStorePath(logical: string): [string, string] {
  const rest = logical.slice(STORE_DIR.length + 1);
  const slash = rest.indexOf("/");
  const top = `${STORE_DIR}/${slash < 0 ? rest : rest.slice(0, slash)}`;
  parseStorePath(top);
  return [top, slash < 0 ? "" : rest.slice(slash + 1)];
}

/** Reads nodes inside store paths, each NAR fetched at most once. */
export class StoreFiles {
  /** NARs read through irisd. */
  narFetches = 0;
  private readonly trees = new Map<string, Promise<Map<string, FileNode>>>();

  constructor(private readonly options: StoreFilesOptions) {}

  /** The node at `logical` (a path inside the store), not following a final link; undefined when absent. */
  async node(logical: string): Promise<FileNode | undefined> {
    const [top, rest] = splitStorePath(logical);
    const store = this.options.store;
    if (store?.isValidPath(top) === true) return this.localNode(store, top, rest);
    const tree = await this.tree(top);
    return tree.get(rest);
  }

  /**
   * Follows `logical` component by component, through links (absolute ones
   * into other store paths too). Undefined when something on the way is
   * missing or leaves the store (like `/dev/null` for a masked unit).
   */
  async resolve(
    logical: string,
    followLast = true,
  ): Promise<{ path: string; node: FileNode } | undefined> {
    let pending = logical.split("/").filter((p) => p !== "" && p !== ".");
    let current: string[] = [];
    let hops = 0;
    let node: FileNode | undefined;
    while (pending.length > 0) {
      const [part, ...rest] = pending;
      pending = rest;
      if (part === undefined) break;
      if (part === "..") {
        current.pop();
        continue;
      }
      const candidate = `/${[...current, part].join("/")}`;
      if (current.length < 2) {
        // `/nix` and `/nix/store` themselves.
        current.push(part);
        if (`/${current.join("/")}` !== STORE_DIR.slice(0, candidate.length)) return undefined;
        continue;
      }
      if (!candidate.startsWith(`${STORE_DIR}/`)) return undefined;
      node = await this.node(candidate);
      if (node === undefined) return undefined;
      if (node.type === "symlink" && (pending.length > 0 || followLast)) {
        hops += 1;
        if (hops > MAX_HOPS) return undefined;
        if (node.target.startsWith("/")) current = [];
        pending = [...node.target.split("/").filter((p) => p !== "" && p !== "."), ...pending];
        continue;
      }
      current.push(part);
    }
    const resolved = `/${current.join("/")}`;
    if (node === undefined || !resolved.startsWith(`${STORE_DIR}/`)) return undefined;
    return { path: resolved, node };
  }

  private async localNode(
    store: StoreDb,
    top: string,
    rest: string,
  ): Promise<FileNode | undefined> {
    const location = storeLocation({ root: store.location.root });
    const file = physicalPath(location, rest === "" ? top : `${top}/${rest}`);
    try {
      const stat = await lstat(file);
      if (stat.isSymbolicLink()) return { type: "symlink", target: await readlink(file) };
      if (stat.isDirectory()) return { type: "directory", entries: (await readdir(file)).sort() };
      const digest = createHash("sha256")
        .update(await readFile(file))
        .digest("hex");
      return { type: "regular", sha256: digest };
    } catch (err) {
      if (hasErrorCode(err, "ENOENT", "ENOTDIR")) return undefined;
      throw new OgygiaError("ERR_OGYGIA_IMPACT", `cannot read ${file}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }

  private tree(top: string): Promise<Map<string, FileNode>> {
    let tree = this.trees.get(top);
    if (tree === undefined) {
      tree = this.fetchTree(top);
      this.trees.set(top, tree);
    }
    return tree;
  }

  private async fetchTree(top: string): Promise<Map<string, FileNode>> {
    const { irisd } = this.options;
    const { hashPart } = parseStorePath(top);
    const answer = await irisd.get(`${hashPart}.narinfo`, MAX_NARINFO_BYTES);
    if (answer.status === 404) {
      throw new OgygiaError(
        "ERR_OGYGIA_IMPACT_PATH_UNAVAILABLE",
        `nobody serves ${top}: it is not in the local store, and ogygia-irisd at ${irisd.baseUrl} found no peer that has it`,
      );
    }
    if (answer.status !== 200) {
      throw new OgygiaError(
        "ERR_OGYGIA_IMPACT_IRISD",
        `ogygia-irisd at ${irisd.baseUrl} answered ${answer.status} for the narinfo of ${top}`,
      );
    }
    const info = parseNarInfo(answer.body.toString("utf8"), { whence: `of ${top}` });
    const max = this.options.maxNarBytes ?? 256 * 1024 * 1024;
    if (info.compression !== "none") {
      throw new OgygiaError(
        "ERR_OGYGIA_IMPACT_IRISD",
        `the NAR of ${top} is compressed (${info.compression}); ogygia-irisd serves NARs uncompressed`,
      );
    }
    if (info.narSize > max) {
      throw new OgygiaError(
        "ERR_OGYGIA_IMPACT",
        `the NAR of ${top} is ${info.narSize} bytes, more than the ${max} read to list its files`,
      );
    }
    const nar = await irisd.get(info.url.replace(/^\/+/, ""), info.narSize);
    this.narFetches += 1;
    if (nar.status !== 200) {
      throw new OgygiaError(
        "ERR_OGYGIA_IMPACT_IRISD",
        `ogygia-irisd at ${irisd.baseUrl} answered ${nar.status} for the NAR of ${top}`,
      );
    }
    return decodeTree(nar.body, top);
  }
}

/** The nodes of a NAR by path relative to its root ("" for the root). */
export function decodeTree(bytes: Buffer, what: string): Map<string, FileNode> {
  const tree = new Map<string, FileNode>();
  const dirs = new Map<string, string[]>();
  let hash: ReturnType<typeof createHash> | undefined;
  const parser = createNarParser(
    (event) => {
      const rel = event.type === "data" ? "" : event.path.toString("utf8");
      const parent = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
      const name = rel.slice(rel.lastIndexOf("/") + 1);
      switch (event.type) {
        case "directory": {
          const entries: string[] = [];
          dirs.set(rel, entries);
          tree.set(rel, { type: "directory", entries });
          if (rel !== "") dirs.get(parent)?.push(name);
          break;
        }
        case "file":
          hash = createHash("sha256");
          if (rel !== "") dirs.get(parent)?.push(name);
          break;
        case "data":
          hash?.update(event.data);
          break;
        case "file-end":
          tree.set(rel, { type: "regular", sha256: hash?.digest("hex") ?? "" });
          hash = undefined;
          break;
        case "symlink":
          tree.set(rel, { type: "symlink", target: event.target.toString("utf8") });
          if (rel !== "") dirs.get(parent)?.push(name);
          break;
        case "directory-end":
          break;
      }
    },
    { what },
  );
  parser.write(bytes);
  parser.end();
  return tree;
}

/** `path.posix.basename` for logical store paths. */
export function baseName(logical: string): string {
  return path.posix.basename(logical);
}
