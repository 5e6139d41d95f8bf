/**
 * Closures from anywhere: each path's references and NAR size from the local
 * store database when the path is there, else through the local
 * ogygia-irisd (which asks its peers). Every path is read once per reader,
 * however many closures share it, and so is every closure.
 *
 * Through irisd, the closures asked for in the same turn of the event loop
 * are read together: `POST /closure` with up to `ROOTS_PER_REQUEST` roots
 * answers the union of their closures at once (a fleet's 1,000 systems in
 * 8 requests, not a narinfo per distinct path). A closure whose every path
 * arrived is assembled synchronously; what an answer lacks (a path nobody
 * serves, or an irisd without the endpoint: 404/405, then never asked
 * again) is read a narinfo at a time, which names the missing path.
 */

import { OgygiaError, errorMessage } from "../core/index.js";
import { MAX_CLOSURE_ROOTS, type ClosureAnswer } from "../iris/index.js";
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
  /** Read a narinfo per path, never `POST /closure` (default false). */
  perPath?: boolean;
}

const MAX_NARINFO_BYTES = 1024 * 1024;
/**
 * Roots per `POST /closure`: each answer repeats what its roots share with
 * earlier answers' (a fleet's common paths), so fewer, larger requests.
 */
const ROOTS_PER_REQUEST = Math.min(128, MAX_CLOSURE_ROOTS);
/** The largest `POST /closure` answer read. */
const MAX_CLOSURE_ANSWER_BYTES = 512 * 1024 * 1024;

const NO_MATCHES: readonly string[] = [];
/** Memo mark of a path whose references are being worked out. */
const IN_PROGRESS: readonly string[] = [];

/** Reads path infos and closures, caching both. */
export class ClosureReader {
  /** Paths read from the local store database. */
  localReads = 0;
  /** Paths being read a narinfo at a time (and those that failed). */
  private readonly infos = new Map<string, Promise<PathEntry>>();
  /** Every path read, for closures assembled without a promise per path. */
  private readonly known = new Map<string, PathEntry>();
  private readonly closures = new Map<string, Promise<Closure>>();
  /** Whether irisd answers `POST /closure`: unknown until its first answer. */
  private batching: boolean | undefined;
  /** Roots waiting for the next `POST /closure`, with who waits for them. */
  private queued = new Map<string, (() => void)[]>();
  private flushScheduled = false;

  constructor(private readonly options: ClosureReaderOptions) {
    if (options.perPath === true) this.batching = false;
  }

  /** The irisd requests made so far. */
  get requests(): number {
    return this.options.irisd.requests;
  }

  /** Distinct paths read (or being read) so far. */
  get distinctPaths(): number {
    let pending = 0;
    for (const storePath of this.infos.keys()) if (!this.known.has(storePath)) pending += 1;
    return this.known.size + pending;
  }

  /** One path's entry; `neededBy` names the path that refers to it, for the error. */
  info(storePath: string, neededBy?: string): Promise<PathEntry> {
    let entry = this.infos.get(storePath);
    if (entry === undefined) {
      const known = this.known.get(storePath);
      if (known !== undefined) return Promise.resolve(known);
      entry = this.read(storePath, neededBy).then((read) => {
        if (!this.known.has(storePath)) this.known.set(storePath, read);
        return read;
      });
      this.infos.set(storePath, entry);
    }
    return entry;
  }

  /** The closure of `root`; fails with ERR_OGYGIA_IMPACT_PATH_UNAVAILABLE naming a path nobody has. */
  closure(root: string): Promise<Closure> {
    let closure = this.closures.get(root);
    if (closure === undefined) {
      closure =
        this.localClosure(root) ??
        this.prefetch(root).then(() => this.knownClosure(root) ?? this.walk(root));
      this.closures.set(root, closure);
    }
    return closure;
  }

  /**
   * The paths of `root`'s closure for which `isMatch` holds, sorted, without
   * assembling the closure: what lies below each path is worked out once for
   * every root that shares it (a fleet's common paths once, not per host).
   * Fails as `closure` does for a path nobody serves.
   */
  async matchesIn(root: string, isMatch: (storePath: string) => boolean): Promise<string[]> {
    if (!this.known.has(root) && this.localClosure(root) === undefined) await this.prefetch(root);
    let found = this.matchesBelow(root, isMatch);
    if (found === undefined) {
      // Something was not read yet: the walk reads it (or names what nobody has).
      await this.closure(root);
      found = this.matchesBelow(root, isMatch);
    }
    if (found === undefined) throw new Error(`closure of ${root} read but incomplete`);
    return [...found];
  }

  /** Matches below each path, per predicate: computed once per path. */
  private readonly below = new WeakMap<
    (storePath: string) => boolean,
    Map<string, readonly string[]>
  >();

  /** `matchesIn` over the paths already read; undefined when one is missing. */
  private matchesBelow(
    root: string,
    isMatch: (storePath: string) => boolean,
  ): readonly string[] | undefined {
    let memo = this.below.get(isMatch);
    if (memo === undefined) {
      memo = new Map();
      this.below.set(isMatch, memo);
    }
    const done = memo.get(root);
    if (done !== undefined) return done;
    // Iterative post-order over the (acyclic, but for self-references) graph;
    // a path on the stack is marked IN_PROGRESS in the memo.
    const stack: { path: string; entry: PathEntry; next: number }[] = [];
    const push = (storePath: string): boolean => {
      const entry = this.known.get(storePath);
      if (entry === undefined) return false;
      memo.set(storePath, IN_PROGRESS);
      stack.push({ path: storePath, entry, next: 0 });
      return true;
    };
    if (!push(root)) return undefined;
    for (let top = stack.at(-1); top !== undefined; top = stack.at(-1)) {
      const refs = top.entry.references;
      let descended = false;
      for (let reference = refs[top.next]; reference !== undefined; reference = refs[top.next]) {
        top.next += 1;
        if (memo.has(reference)) continue;
        if (!push(reference)) {
          for (const open of stack) memo.delete(open.path);
          return undefined;
        }
        descended = true;
        break;
      }
      if (descended) continue;
      stack.pop();
      let union: string[] | undefined = isMatch(top.path) ? [top.path] : undefined;
      for (const reference of refs) {
        const below = memo.get(reference);
        if (below === undefined || below.length === 0 || below === IN_PROGRESS) continue;
        if (union === undefined) {
          union = [...below];
          continue;
        }
        for (const p of below) if (!union.includes(p)) union.push(p);
      }
      memo.set(top.path, union === undefined ? NO_MATCHES : union.sort());
    }
    return memo.get(root);
  }

  /** Resolves once `root`'s closure was asked of irisd in one batch (or cannot be). */
  private prefetch(root: string): Promise<void> {
    if (this.batching === false || this.known.has(root)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiting = this.queued.get(root);
      if (waiting === undefined) this.queued.set(root, [resolve]);
      else waiting.push(resolve);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    });
  }

  /** Sends the queued roots, `ROOTS_PER_REQUEST` a request. */
  private flush(): void {
    const queued = [...this.queued];
    this.queued = new Map();
    for (let start = 0; start < queued.length; start += ROOTS_PER_REQUEST) {
      const chunk = queued.slice(start, start + ROOTS_PER_REQUEST);
      const wake = (): void => {
        for (const [, waiting] of chunk) for (const resolve of waiting) resolve();
      };
      this.readBatch(chunk.map(([root]) => root)).then(wake, wake);
    }
  }

  /** One `POST /closure`; any failure leaves the paths to be read a narinfo at a time. */
  private async readBatch(roots: string[]): Promise<void> {
    if (this.batching === false) return;
    const { irisd } = this.options;
    let answer;
    try {
      answer = await irisd.postJson("closure", { paths: roots }, MAX_CLOSURE_ANSWER_BYTES);
    } catch (err) {
      if (err instanceof OgygiaError) return;
      throw err;
    }
    if (answer.status === 404 || answer.status === 405) {
      this.batching = false;
      return;
    }
    if (answer.status !== 200) return;
    this.batching = true;
    let parsed: ClosureAnswer;
    try {
      parsed = JSON.parse(answer.body.toString("utf8")) as ClosureAnswer;
    } catch {
      return;
    }
    if (!Array.isArray(parsed.paths) || !Array.isArray(parsed.missing)) return;
    // References are indices into paths, then missing: one string per path, shared.
    const names: unknown[] = parsed.paths.map((entry) => entry.path);
    for (const missing of parsed.missing) names.push(missing);
    for (const entry of parsed.paths) {
      if (
        typeof entry.path !== "string" ||
        typeof entry.narSize !== "number" ||
        !Array.isArray(entry.references) ||
        this.known.has(entry.path)
      ) {
        continue;
      }
      const references: string[] = new Array<string>(entry.references.length);
      let valid = true;
      for (let r = 0; r < references.length; r++) {
        const name = names[entry.references[r] ?? -1];
        if (typeof name !== "string") {
          valid = false;
          break;
        }
        references[r] = name;
      }
      // A malformed entry is left to be read a narinfo at a time.
      if (!valid) continue;
      this.known.set(entry.path, {
        storePath: entry.path,
        narSize: entry.narSize,
        references,
        source: "irisd",
      });
    }
  }

  /** The closure of `root` from the paths already read, or undefined when one is missing. */
  private knownClosure(root: string): Closure | undefined {
    const first = this.known.get(root);
    if (first === undefined) return undefined;
    const paths = new Map<string, PathEntry>([[root, first]]);
    const stack = [first];
    for (let entry = stack.pop(); entry !== undefined; entry = stack.pop()) {
      for (const reference of entry.references) {
        if (paths.has(reference)) continue;
        const next = this.known.get(reference);
        if (next === undefined) return undefined;
        paths.set(reference, next);
        stack.push(next);
      }
    }
    return { root, paths };
  }

  /** The closure in one query when the local store has the root (then it has all of it). */
  private localClosure(root: string): Promise<Closure> | undefined {
    const rows = this.options.closureDb?.closure(root);
    if (rows === undefined) return undefined;
    const paths = new Map<string, PathEntry>();
    for (const row of rows) {
      const entry: PathEntry = { ...row, source: "local" };
      if (!this.known.has(row.storePath) && !this.infos.has(row.storePath)) {
        this.known.set(row.storePath, entry);
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
