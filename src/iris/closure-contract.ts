/**
 * The wire contract of `POST /closure`: many paths' closures in one answer
 * (what `ogygia who-runs`, `diff` and `impact` read instead of a narinfo
 * per path). Shared by the daemon's route and the CLI's closure reader.
 */

/** The request body. */
export interface ClosureRequest {
  /** Full store paths whose closures are wanted (at most `MAX_CLOSURE_ROOTS`). */
  paths: string[];
}

/** One path of the answer: what a narinfo says of its size and references. */
export interface ClosureEntry {
  path: string;
  narSize: number;
  /**
   * The references, as indices into the answer's `paths` followed by its
   * `missing` (index `paths.length + i` is `missing[i]`); the path itself
   * included when it refers to itself. Indices keep the answer a third of
   * the size of full paths, and the client's strings shared.
   */
  references: number[];
}

/** The answer: every path of the union of the closures this irisd could read. */
export interface ClosureAnswer {
  paths: ClosureEntry[];
  /** Paths of the closures that neither this host nor any peer serves (their closures are left out). */
  missing: string[];
}

/** Roots per request. */
export const MAX_CLOSURE_ROOTS = 512;
/** Paths per answer: a larger union is a 413 (ask for fewer roots). */
export const MAX_CLOSURE_PATHS = 400_000;
