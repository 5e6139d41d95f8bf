/**
 * Closures from anywhere: each path's references and NAR size from the local
 * store database when the path is there, else from its narinfo through the
 * local ogygia-irisd (which asks its peers). Every path is read once per
 * reader, however many closures share it, and so is every closure.
 */

import { OgygiaError, errorMessage } from "../core/index.js";
import { parseNarInfo, parseStorePath, type ClosureDb, type StoreDb } from "../nix/index.js";
import type { IrisdClient } from "./http.js";

/** What a closure needs of a path. */
export interface PathEntry {
  storePath: string;
  narSize: number;
  /** Full store paths, the path itself included when it refers to itself. */
  references: string[];
  /** Where it was read: the local store or irisd. */
  source: "local" | "irisd";
}

/** A closure: every path reachable from `root`, the root included. */
export interface Closure {
  root: string;
  paths: ReadonlyMap<string, PathEntry>;
}

export interface ClosureReaderOptions {
  /** The local store's database, when this host has one. */
  store: StoreDb | undefined;
  /** The same database for whole-closure queries. */
  closureDb?: ClosureDb | undefined;
  irisd: IrisdClient;
}

const MAX_NARINFO_BYTES = 1024 * 1024;

/** Reads path infos and closures, caching both. */
export class ClosureReader {
  /** Paths read from the local store database. */
  localReads = 0;
  private readonly infos = new Map<string, Promise<PathEntry>>();
  private readonly closures = new Map<string, Promise<Closure>>();

  constructor(private readonly options: ClosureReaderOptions) {}

  /** The irisd requests made so far. */
  get requests(): number {
    return this.options.irisd.requests;
  }

  /** Distinct paths read so far. */
  get distinctPaths(): number {
    return this.infos.size;
  }

  /** One path's entry; `neededBy` names the path that refers to it, for the error. */
  info(storePath: string, neededBy?: string): Promise<PathEntry> {
    let entry = this.infos.get(storePath);
    if (entry === undefined) {
      entry = this.read(storePath, neededBy);
      this.infos.set(storePath, entry);
    }
    return entry;
  }

  /** The closure of `root`; fails with ERR_OGYGIA_IMPACT_PATH_UNAVAILABLE naming a path nobody has. */
  closure(root: string): Promise<Closure> {
    let closure = this.closures.get(root);
    if (closure === undefined) {
      closure = this.localClosure(root) ?? this.walk(root);
      this.closures.set(root, closure);
    }
    return closure;
  }

  /** The closure in one query when the local store has the root (then it has all of it). */
  private localClosure(root: string): Promise<Closure> | undefined {
    const rows = this.options.closureDb?.closure(root);
    if (rows === undefined) return undefined;
    const paths = new Map<string, PathEntry>();
    for (const row of rows) {
      const known = this.infos.get(row.storePath);
      const entry: PathEntry = { ...row, source: "local" };
      if (known === undefined) {
        this.infos.set(row.storePath, Promise.resolve(entry));
        this.localReads += 1;
      }
      paths.set(row.storePath, entry);
    }
    return Promise.resolve({ root, paths });
  }

  /**
   * Visits each path as soon as its referrer's entry arrives (not level by
   * level), so one slow answer holds up only what lies below it.
   */
  private walk(root: string): Promise<Closure> {
    return new Promise((resolve, reject) => {
      const paths = new Map<string, PathEntry>();
      const queued = new Set([root]);
      let pending = 0;
      let failed = false;
      const visit = (path: string, neededBy: string | undefined): void => {
        pending += 1;
        this.info(path, neededBy).then(
          (entry) => {
            if (failed) return;
            paths.set(entry.storePath, entry);
            for (const reference of entry.references) {
              if (queued.has(reference)) continue;
              queued.add(reference);
              visit(reference, entry.storePath);
            }
            pending -= 1;
            if (pending === 0) resolve({ root, paths });
          },
          (err: unknown) => {
            if (failed) return;
            failed = true;
            reject(err instanceof Error ? err : new Error(String(err)));
          },
        );
      };
      visit(root, undefined);
    });
  }

  private async read(storePath: string, neededBy: string | undefined): Promise<PathEntry> {
    const parsed = parseStorePath(storePath);
    const local = this.options.store?.queryPathInfo(storePath);
    if (local !== undefined) {
      this.localReads += 1;
      return {
        storePath,
        narSize: local.narSize,
        references: local.references,
        source: "local",
      };
    }
    const { irisd } = this.options;
    const answer = await irisd.get(`${parsed.hashPart}.narinfo`, MAX_NARINFO_BYTES);
    if (answer.status === 404) {
      throw new OgygiaError(
        "ERR_OGYGIA_IMPACT_PATH_UNAVAILABLE",
        `nobody serves ${storePath}${neededBy === undefined ? "" : ` (referenced by ${neededBy})`}: ` +
          `it is not in ${this.options.store === undefined ? "a local store" : `the local store (${this.options.store.dbPath})`}, ` +
          `and ogygia-irisd at ${irisd.baseUrl} found no peer that has it`,
        {
          hint: "Is the host that built or runs it up, with its ogygia-irisd listed among this irisd's peers?",
        },
      );
    }
    if (answer.status !== 200) {
      throw new OgygiaError(
        "ERR_OGYGIA_IMPACT_IRISD",
        `ogygia-irisd at ${irisd.baseUrl} answered ${answer.status} for the narinfo of ${storePath}`,
      );
    }
    let info;
    try {
      info = parseNarInfo(answer.body.toString("utf8"), {
        whence: `${irisd.baseUrl}/${parsed.hashPart}.narinfo`,
      });
    } catch (err) {
      if (!(err instanceof OgygiaError)) throw err;
      throw new OgygiaError("ERR_OGYGIA_IMPACT_IRISD", errorMessage(err), { cause: err });
    }
    if (info.storePath !== storePath) {
      throw new OgygiaError(
        "ERR_OGYGIA_IMPACT_IRISD",
        `ogygia-irisd at ${irisd.baseUrl} answered the narinfo of ${info.storePath} when asked for ${storePath}`,
      );
    }
    return { storePath, narSize: info.narSize, references: info.references, source: "irisd" };
  }
}

/** The sum of the NAR sizes of a closure's paths. */
export function closureSize(closure: Closure): number {
  let total = 0;
  for (const entry of closure.paths.values()) total += entry.narSize;
  return total;
}
