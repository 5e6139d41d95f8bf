/**
 * A small router: an ordered list of routes, each owning a set of paths
 * (`match`) and the methods it answers. Matching is plain string work on
 * the decoded path (see `url.ts`), with no regular expressions on the hot
 * path. A path no route owns is a 404; a method a route does not answer
 * is a 405 with `Allow`. The cache is read-only: any other method on a
 * path no route owns (Nix's `PUT`s of `nix copy --to`) is a 405 too, with
 * `Allow: GET, HEAD` and a body saying so, which Nix prints.
 */

import type { IncomingMessage, ServerResponse } from "node:http";

import { isHashPart, isNix32 } from "../../nix/index.js";
import { HttpError, badRequest, notFound } from "./http-error.js";

/** What a handler did, for the metrics and the access log. */
export interface RouteOutcome {
  status: number;
  /** Body bytes sent (0 for HEAD). */
  bytes: number;
  /** Answered by another process (a worker's request passed to the primary), which counts it. */
  forwarded?: boolean;
}

export interface Route {
  /** Metric label and log field, e.g. `narinfo`. */
  readonly name: string;
  readonly methods: readonly string[];
  /**
   * The captured parameters when this route owns `path`, else undefined.
   * May throw a 400 for a path of its shape with malformed parts.
   */
  match(path: string): readonly string[] | undefined;
  /** Answers; throws HttpError for an error response. Must end `res` or throw. */
  handle(
    req: IncomingMessage,
    res: ServerResponse,
    params: readonly string[],
  ): RouteOutcome | Promise<RouteOutcome>;
}

export interface RouteMatch {
  route: Route;
  params: readonly string[];
}

export interface Router {
  readonly routes: readonly Route[];
  /** The route for `method path`; throws HttpError 404 or 405. */
  find(method: string, path: string): RouteMatch;
}

const NO_PARAMS: readonly string[] = [];

const READ_METHODS = new Set(["GET", "HEAD"]);
/** Methods that would write to a cache that accepts no writes. */
const WRITE_METHODS = new Set(["PUT", "POST", "DELETE", "PATCH"]);

/** The body of a 405 for a write: Nix prints it under "response body". */
export const READ_ONLY_MESSAGE =
  "this binary cache is read-only: ogygia-irisd serves the host's Nix store and accepts no " +
  "uploads (copy paths into the host's store instead, e.g. nix copy --to ssh://HOST)";

function notAllowed(method: string, allow: readonly string[]): HttpError {
  const message = WRITE_METHODS.has(method) ? READ_ONLY_MESSAGE : `${method} is not allowed here`;
  return new HttpError(405, message, { headers: { Allow: allow.join(", ") } });
}

export function createRouter(routes: readonly Route[]): Router {
  return {
    routes,
    find(method, path) {
      for (const route of routes) {
        const params = route.match(path);
        if (params === undefined) continue;
        if (!route.methods.includes(method)) throw notAllowed(method, route.methods);
        return { route, params };
      }
      if (!READ_METHODS.has(method)) throw notAllowed(method, ["GET", "HEAD"]);
      throw notFound();
    },
  };
}

/** Matches exactly `path`. */
export function exactPath(path: string): (candidate: string) => readonly string[] | undefined {
  return (candidate) => (candidate === path ? NO_PARAMS : undefined);
}

/**
 * `<prefix><hash part>.narinfo`, e.g. `/0c1a...9z.narinfo`: the hash part.
 * Any other single segment ending in `.narinfo` under `prefix` is a 400.
 */
export function narInfoPath(prefix: string): (candidate: string) => readonly string[] | undefined {
  const suffix = ".narinfo";
  return (candidate) => {
    if (!candidate.endsWith(suffix) || !candidate.startsWith(prefix)) return undefined;
    const hashPart = candidate.slice(prefix.length, candidate.length - suffix.length);
    if (hashPart.includes("/")) return undefined;
    if (!isHashPart(hashPart)) {
      throw badRequest("a narinfo URL names a store path hash: 32 nix32 characters");
    }
    return [hashPart];
  };
}

/** `<prefix><hash part>.ls`: the hash part; any other name is not ours (404). */
export function listingPath(prefix: string): (candidate: string) => readonly string[] | undefined {
  const suffix = ".ls";
  return (candidate) => {
    if (!candidate.endsWith(suffix) || !candidate.startsWith(prefix)) return undefined;
    const hashPart = candidate.slice(prefix.length, candidate.length - suffix.length);
    return isHashPart(hashPart) ? [hashPart] : undefined;
  };
}

/** Characters of a nix32 SHA-256. */
const NAR_HASH_LENGTH = 52;

/**
 * `<prefix>nar/<hash part>-<nix32 NAR hash>.nar`: [hash part, NAR hash].
 * Any other name under `<prefix>nar/` is not ours (a 404): Nix's own
 * `nar/<file hash>.nar[.xz]` names, or anything else, are simply not here.
 */
export function narPath(
  prefix: string,
  suffix = ".nar",
): (candidate: string) => readonly string[] | undefined {
  const start = `${prefix}nar/`;
  return (candidate) => {
    if (!candidate.endsWith(suffix) || !candidate.startsWith(start)) return undefined;
    const name = candidate.slice(start.length, candidate.length - suffix.length);
    const hashPart = name.slice(0, 32);
    const narHash = name.slice(33);
    if (
      name.length !== 33 + NAR_HASH_LENGTH ||
      name.charAt(32) !== "-" ||
      !isHashPart(hashPart) ||
      !isNix32(narHash)
    ) {
      return undefined;
    }
    return [hashPart, narHash];
  };
}
