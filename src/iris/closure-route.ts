/**
 * `POST /closure`: the union of many paths' closures in one answer, so a
 * client reading a fleet's closures (`ogygia who-runs`, `diff`, `impact`)
 * makes a request per few hundred systems instead of one per path.
 *
 * What this host serves is read from its store's reference graph, kept in
 * memory while the database does not change; any other path (not valid here, or not
 * serveable: unsigned and no key) through the resolver chain, as a narinfo
 * request would be (NAR cache, then peers, whose narinfos are verified),
 * its references walked in turn. A path nobody serves is listed in
 * `missing` and its closure left out. Only what a narinfo request would
 * reveal is answered: serveable paths' sizes and references.
 */

import type { IncomingMessage } from "node:http";

import { OgygiaError } from "../core/index.js";
import {
  isContentAddressed,
  parseNarInfo,
  parseStorePath,
  type ClosureDb,
  type NarInfo,
} from "../nix/index.js";
import { MAX_CLOSURE_PATHS, MAX_CLOSURE_ROOTS } from "./closure-contract.js";
import { HttpError, badRequest, sendBody, type ResolverChain, type Route } from "./http/index.js";

/** The largest request body (512 store paths fit with room to spare). */
const MAX_BODY_BYTES = 256 * 1024;
/** Narinfo lookups through the chain (peers) in flight at once. */
const REMOTE_CONCURRENCY = 16;

export interface ClosureRouteOptions {
  /** The local store's database, for whole closures in one query. */
  db: ClosureDb;
  chain: ResolverChain;
  storeDir: string;
  /** A signing key is configured: every valid path is serveable. */
  canSign: boolean;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const tooLarge = (): HttpError =>
    new HttpError(413, `the body is larger than ${MAX_BODY_BYTES} bytes`);
  if (Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** The store paths a request names; throws a 400 saying what is wrong. */
export function parseClosureRequest(body: Buffer, storeDir: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    throw badRequest('the body is not JSON: send {"paths": ["/nix/store/...", ...]}');
  }
  const paths = (parsed as { paths?: unknown } | null)?.paths;
  if (!Array.isArray(paths) || paths.length === 0) {
    throw badRequest('"paths" must be a non-empty list of store paths');
  }
  if (paths.length > MAX_CLOSURE_ROOTS) {
    throw badRequest(`at most ${MAX_CLOSURE_ROOTS} paths per request, not ${paths.length}`);
  }
  const out = new Set<string>();
  for (const p of paths) {
    if (typeof p !== "string") throw badRequest('"paths" must hold strings');
    try {
      parseStorePath(p, storeDir);
    } catch (err) {
      if (err instanceof OgygiaError) throw badRequest(`not a store path: ${JSON.stringify(p)}`);
      throw err;
    }
    out.add(p);
  }
  return [...out];
}

/** Runs `work` over `items`, `limit` at a time. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next] as T;
      next += 1;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * The store's reference graph in memory: paths by index, references in
 * compressed rows. Read in two scans of the database (about 1 s for 200,000
 * paths) the first time it is needed and again whenever the database
 * changed; a closure is then a walk over integer arrays (a recursive query
 * cost 15-50 µs per path).
 */
interface StoreGraph {
  version: number;
  indexOf: Map<string, number>;
  paths: string[];
  narSize: number[];
  serveable: Uint8Array;
  /** References of path i: targets[offsets[i] .. offsets[i + 1]). */
  offsets: Int32Array;
  targets: Int32Array;
}

function buildGraph(options: ClosureRouteOptions, version: number): StoreGraph {
  const { paths: rows, refs } = options.db.readGraph();
  const n = rows.length;
  const indexOf = new Map<string, number>();
  const indexOfId = new Map<number, number>();
  const paths: string[] = new Array<string>(n);
  const narSize: number[] = new Array<number>(n);
  for (const [i, row] of rows.entries()) {
    paths[i] = row.path;
    narSize[i] = row.narSize ?? 0;
    indexOf.set(row.path, i);
    indexOfId.set(row.id, i);
  }
  const counts = new Int32Array(n + 1);
  const from = new Int32Array(refs.length);
  const to = new Int32Array(refs.length);
  let edges = 0;
  for (const ref of refs) {
    const a = indexOfId.get(ref.referrer);
    const b = indexOfId.get(ref.reference);
    if (a === undefined || b === undefined) continue;
    from[edges] = a;
    to[edges] = b;
    edges += 1;
    counts[a + 1] = (counts[a + 1] ?? 0) + 1;
  }
  const offsets = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) offsets[i + 1] = (offsets[i] ?? 0) + (counts[i + 1] ?? 0);
  const fill = offsets.slice(0, n);
  const targets = new Int32Array(edges);
  for (let e = 0; e < edges; e++) {
    const a = from[e] ?? 0;
    const slot = fill[a] ?? 0;
    targets[slot] = to[e] ?? 0;
    fill[a] = slot + 1;
  }
  const serveable = new Uint8Array(n);
  for (const [i, row] of rows.entries()) {
    if ((narSize[i] ?? 0) <= 0) continue;
    if (options.canSign || (row.sigs !== null && row.sigs !== "")) {
      serveable[i] = 1;
    } else if (row.ca !== null && row.ca !== "") {
      const references: string[] = [];
      for (let e = offsets[i] ?? 0; e < (offsets[i + 1] ?? 0); e++) {
        references.push(paths[targets[e] ?? 0] ?? "");
      }
      const info = { storePath: row.path, ca: row.ca, references };
      serveable[i] = isContentAddressed(info, options.storeDir) ? 1 : 0;
    }
  }
  return { version, indexOf, paths, narSize, serveable, offsets, targets };
}

/**
 * The union closure of `roots`, as far as this host and its peers serve it,
 * as the JSON text of a `ClosureAnswer` (written directly: building objects
 * for JSON.stringify cost as much again as the walk, mostly in the GC).
 */
export async function readClosures(
  options: ClosureRouteOptions,
  graph: StoreGraph,
  roots: readonly string[],
): Promise<string> {
  const { chain, storeDir } = options;
  /** This host's paths in the answer, as graph indices, in answer order. */
  const local: number[] = [];
  const seen = new Uint8Array(graph.paths.length);
  /** Paths read through the chain, with their references. */
  const remote = new Map<string, { narSize: number; references: readonly string[] }>();
  const missing: string[] = [];
  const asked = new Set<string>(roots);
  const tooMany = (): HttpError =>
    new HttpError(
      413,
      `the closures hold more than ${MAX_CLOSURE_PATHS} paths: ask for fewer at a time`,
    );
  let pending: string[] = [...roots];
  while (pending.length > 0) {
    // This host's share: a walk over the graph.
    const ask: string[] = [];
    const stack: number[] = [];
    for (const storePath of pending) {
      const i = graph.indexOf.get(storePath);
      if (i === undefined) {
        if (!remote.has(storePath)) ask.push(storePath);
      } else if (seen[i] === 0) {
        seen[i] = 1;
        stack.push(i);
      }
    }
    for (let i = stack.pop(); i !== undefined; i = stack.pop()) {
      if (graph.serveable[i] === 0) {
        // Not ours to reveal: a peer may serve it (its own references then follow).
        ask.push(graph.paths[i] ?? "");
        continue;
      }
      local.push(i);
      for (let e = graph.offsets[i] ?? 0; e < (graph.offsets[i + 1] ?? 0); e++) {
        const j = graph.targets[e] ?? 0;
        if (seen[j] === 0) {
          seen[j] = 1;
          stack.push(j);
        }
      }
    }
    if (local.length > MAX_CLOSURE_PATHS) throw tooMany();
    // The rest through the chain: the NAR cache, then the peers.
    const next: string[] = [];
    await eachLimited(ask, REMOTE_CONCURRENCY, async (storePath) => {
      const info = await remoteInfo(chain, storePath, storeDir);
      if (info === undefined) {
        missing.push(storePath);
        return;
      }
      remote.set(storePath, { narSize: info.narSize, references: info.references });
      for (const reference of info.references) {
        if (asked.has(reference) || remote.has(reference)) continue;
        const j = graph.indexOf.get(reference);
        if (j !== undefined && seen[j] === 1) continue;
        asked.add(reference);
        next.push(reference);
      }
    });
    if (local.length + remote.size > MAX_CLOSURE_PATHS) throw tooMany();
    pending = next;
  }
  missing.sort();
  // Answer indices: this host's paths, then the chain's, then the missing.
  const answerOf = new Int32Array(graph.paths.length).fill(-1);
  for (const [k, i] of local.entries()) answerOf[i] = k;
  const otherIndex = new Map<string, number>();
  let k = local.length;
  for (const storePath of remote.keys()) otherIndex.set(storePath, k++);
  for (const storePath of missing) otherIndex.set(storePath, k++);
  const indexOfPath = (storePath: string): number | undefined => {
    const i = graph.indexOf.get(storePath);
    const index = i === undefined ? -1 : (answerOf[i] ?? -1);
    return index >= 0 ? index : otherIndex.get(storePath);
  };
  const parts: string[] = [];
  for (const i of local) {
    const references: number[] = [];
    for (let e = graph.offsets[i] ?? 0; e < (graph.offsets[i + 1] ?? 0); e++) {
      const j = graph.targets[e] ?? 0;
      const index = answerOf[j] ?? -1;
      const resolved = index >= 0 ? index : otherIndex.get(graph.paths[j] ?? "");
      if (resolved !== undefined) references.push(resolved);
    }
    parts.push(entryJson(graph.paths[i] ?? "", graph.narSize[i] ?? 0, references));
  }
  for (const [storePath, entry] of remote) {
    const references: number[] = [];
    for (const reference of entry.references) {
      // A reference outside the answer is one whose referrer's walk stopped; never expected.
      const index = indexOfPath(reference);
      if (index !== undefined) references.push(index);
    }
    parts.push(entryJson(storePath, entry.narSize, references));
  }
  return `{"paths":[${parts.join(",")}],"missing":${JSON.stringify(missing)}}`;
}

/** One `ClosureEntry` as JSON.stringify would write it, without an object per path. */
function entryJson(storePath: string, narSize: number, references: readonly number[]): string {
  return `{"path":${JSON.stringify(storePath)},"narSize":${narSize},"references":[${references.join(",")}]}`;
}

async function remoteInfo(
  chain: ResolverChain,
  storePath: string,
  storeDir: string,
): Promise<NarInfo | undefined> {
  const { hashPart } = parseStorePath(storePath, storeDir);
  const served = await chain.narInfo(hashPart);
  if (served?.storePath !== storePath) return undefined;
  // The chain's narinfos are ours or verified peers'; parsed again for the references.
  return parseNarInfo(served.body.toString("utf8"), { storeDir, whence: served.source });
}

/** `POST /closure` (see the module comment). */
export function closureRoute(options: ClosureRouteOptions): Route {
  let graph: StoreGraph | undefined;
  return {
    name: "closure",
    methods: ["POST"],
    match: (path) => (path === "/closure" ? [] : undefined),
    async handle(req, res) {
      const roots = parseClosureRequest(await readBody(req), options.storeDir);
      const version = options.db.dataVersion();
      if (graph?.version !== version) graph = buildGraph(options, version);
      const answer = await readClosures(options, graph, roots);
      return sendBody(req, res, 200, "application/json", Buffer.from(answer));
    },
  };
}
