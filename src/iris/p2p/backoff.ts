/**
 * Exponential backoff for a peer that failed: after the n-th failure in a
 * row it is left alone for base × 2^(n-1) (capped at `maxMs`), give or take
 * `jitter`, so a fleet does not hammer a host that just came back all at
 * once. A success forgets the failures. Times are in milliseconds on any
 * monotonic clock the caller passes in (`performance.now()` in the daemon).
 */

export interface BackoffPolicy {
  /** Delay after the first failure. */
  baseMs: number;
  /** Longest delay. */
  maxMs: number;
  /** Relative spread, 0..1: a delay d becomes uniform in [d(1-j), d(1+j)], capped at maxMs. */
  jitter: number;
}

/** Peers: 1 s, 2 s, 4 s, ... up to 30 s, ±20 %. */
export const PEER_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 30_000, jitter: 0.2 };

export interface Backoff {
  /** Failures in a row. */
  readonly failures: number;
  /** Not to be asked before this time (0 when never failed). */
  readonly retryAt: number;
  /** True when the peer may be asked at `now`. */
  available(now: number): boolean;
  /** Records a failure at `now`; returns the delay chosen. */
  failure(now: number): number;
  /** Records a success: the peer is available again at once. */
  success(): void;
}

/** The delay after `failures` failures in a row (before jitter). */
export function backoffDelay(failures: number, policy: BackoffPolicy): number {
  if (failures <= 0) return 0;
  // 2^30 already exceeds any sane maximum; avoid Infinity for huge counts.
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(failures - 1, 30));
}

/** A backoff state; `random` (0..1) is injectable for tests. */
export function createBackoff(
  policy: BackoffPolicy = PEER_BACKOFF,
  random: () => number = Math.random,
): Backoff {
  let failures = 0;
  let retryAt = 0;
  return {
    get failures() {
      return failures;
    },
    get retryAt() {
      return retryAt;
    },
    available(now) {
      return now >= retryAt;
    },
    failure(now) {
      failures += 1;
      const base = backoffDelay(failures, policy);
      const spread = base * policy.jitter * (2 * random() - 1);
      const delay = Math.max(0, Math.min(policy.maxMs, Math.round(base + spread)));
      retryAt = now + delay;
      return delay;
    },
    success() {
      failures = 0;
      retryAt = 0;
    },
  };
}
