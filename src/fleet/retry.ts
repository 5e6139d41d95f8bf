/**
 * Retrying against a fleet backend: bounded exponential backoff with jitter,
 * and a sleep that a stop request cuts short.
 */

export interface BackoffOptions {
  /** First delay, in milliseconds. */
  initialMs: number;
  /** Upper bound of any delay, in milliseconds. */
  maxMs: number;
  /** Growth per failure; 2 doubles. */
  factor?: number;
  /** Fraction of each delay that is randomised (0.2: ±20 %), so that many hosts do not retry in step. */
  jitter?: number;
  /** For tests: a source of numbers in [0, 1). */
  random?: () => number;
}

/**
 * Delays between retries: `initialMs`, then `factor` times more after each
 * failure, never above `maxMs` (jitter included), until `reset`.
 */
export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private failures = 0;

  constructor(options: BackoffOptions) {
    if (!(options.initialMs > 0) || options.maxMs < options.initialMs) {
      throw new RangeError("Backoff needs 0 < initialMs <= maxMs");
    }
    this.initialMs = options.initialMs;
    this.maxMs = options.maxMs;
    this.factor = options.factor ?? 2;
    this.jitter = Math.min(Math.max(options.jitter ?? 0.2, 0), 1);
    this.random = options.random ?? Math.random;
  }

  /** The number of failures since the last `reset`. */
  get attempts(): number {
    return this.failures;
  }

  /** The delay before the next retry; each call counts one more failure. */
  next(): number {
    // The exponent is capped so that the product never overflows to Infinity.
    const exponent = Math.min(this.failures, 64);
    this.failures += 1;
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** exponent);
    const spread = base * this.jitter * (2 * this.random() - 1);
    return Math.round(Math.min(this.maxMs, Math.max(0, base + spread)));
  }

  /** Starts again from `initialMs` (call after a success). */
  reset(): void {
    this.failures = 0;
  }
}

/**
 * Resolves after `ms`, or as soon as `signal` aborts (it never rejects). The
 * timer does not keep the process alive once the signal has fired.
 */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
