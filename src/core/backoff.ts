/**
 * Bounded exponential backoff with jitter, for everything that retries: the
 * fleet adapters and the publish daemon (`Backoff`: the next delay to sleep
 * with `delay`) and irisd's peers (`BackoffGate`: not to be asked again
 * before a time on the caller's monotonic clock).
 */

export interface BackoffOptions {
  /** Delay after the first failure, in milliseconds. */
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

/** The delay after `failures` failures in a row, before jitter (0 for none). */
export function backoffDelay(
  failures: number,
  options: Pick<BackoffOptions, "initialMs" | "maxMs" | "factor">,
): number {
  if (failures <= 0) return 0;
  // The exponent is capped so that the product never overflows to Infinity.
  const exponent = Math.min(failures - 1, 64);
  return Math.min(options.maxMs, options.initialMs * (options.factor ?? 2) ** exponent);
}

/**
 * Delays between retries: `initialMs`, then `factor` times more after each
 * failure, never above `maxMs` (jitter included), until `reset`.
 */
export class Backoff {
  private readonly options: BackoffOptions;
  private readonly jitter: number;
  private readonly random: () => number;
  private failures = 0;

  constructor(options: BackoffOptions) {
    if (!(options.initialMs > 0) || options.maxMs < options.initialMs) {
      throw new RangeError("Backoff needs 0 < initialMs <= maxMs");
    }
    this.options = options;
    this.jitter = Math.min(Math.max(options.jitter ?? 0.2, 0), 1);
    this.random = options.random ?? Math.random;
  }

  /** The number of failures since the last `reset`. */
  get attempts(): number {
    return this.failures;
  }

  /** The delay before the next retry; each call counts one more failure. */
  next(): number {
    this.failures += 1;
    const base = backoffDelay(this.failures, this.options);
    const spread = base * this.jitter * (2 * this.random() - 1);
    return Math.round(Math.min(this.options.maxMs, Math.max(0, base + spread)));
  }

  /** Starts again from `initialMs` (call after a success). */
  reset(): void {
    this.failures = 0;
  }
}

/**
 * A `Backoff` as a gate: after a failure at `now`, closed until `now` plus
 * the next delay; a success opens it at once and forgets the failures.
 * Times are in milliseconds on any monotonic clock the caller passes in.
 */
export class BackoffGate {
  private readonly backoff: Backoff;
  private until = 0;

  constructor(options: BackoffOptions) {
    this.backoff = new Backoff(options);
  }

  /** Failures in a row. */
  get failures(): number {
    return this.backoff.attempts;
  }

  /** Not to be tried before this time (0 when never failed). */
  get retryAt(): number {
    return this.until;
  }

  /** True when it may be tried at `now`. */
  available(now: number): boolean {
    return now >= this.until;
  }

  /** Records a failure at `now`; returns the delay chosen. */
  failure(now: number): number {
    const wait = this.backoff.next();
    this.until = now + wait;
    return wait;
  }

  /** Records a success: available again at once. */
  success(): void {
    this.backoff.reset();
    this.until = 0;
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
