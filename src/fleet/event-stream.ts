/**
 * An `AsyncIterable` fed by callbacks (a watch's events), with a bounded
 * buffer: memory stays bounded however slowly the consumer reads.
 */

/** What a source writes into. Calls after the end are ignored. */
export interface EventSink<T> {
  push(item: T): void;
  /** Ends the iteration with `error`, after the items already pushed. */
  fail(error: unknown): void;
}

export interface EventStreamOptions {
  /** Ends the iteration (without an error) when aborted. */
  signal: AbortSignal;
  /** Items held for a slow consumer before the stream fails. */
  maxBuffered: number;
  /** The error a stream fails with when the buffer is full. */
  overflowError: () => unknown;
}

/**
 * Each iteration calls `start` with a sink and a signal that aborts when the
 * iteration ends (the caller's signal, a failure, or the consumer leaving
 * the loop); the cleanup `start` returns is awaited once, at the end.
 */
export function eventStream<T>(
  options: EventStreamOptions,
  start: (sink: EventSink<T>, signal: AbortSignal) => () => Promise<void>,
): AsyncIterable<T> {
  return {
    async *[Symbol.asyncIterator]() {
      const buffer: T[] = [];
      let failure: { error: unknown } | undefined;
      let wake: (() => void) | undefined;
      const notify = (): void => {
        const resolve = wake;
        wake = undefined;
        resolve?.();
      };
      const done = new AbortController();
      const signal = AbortSignal.any([options.signal, done.signal]);
      signal.addEventListener("abort", notify);
      const sink: EventSink<T> = {
        push(item) {
          if (failure !== undefined || signal.aborted) return;
          if (buffer.length >= options.maxBuffered) failure = { error: options.overflowError() };
          else buffer.push(item);
          notify();
        },
        fail(error) {
          if (failure !== undefined || signal.aborted) return;
          failure = { error };
          notify();
        },
      };
      const cleanup = start(sink, signal);
      try {
        while (!options.signal.aborted) {
          if (buffer.length > 0) {
            yield buffer.shift() as T;
            continue;
          }
          if (failure !== undefined) throw failure.error;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      } finally {
        done.abort();
        signal.removeEventListener("abort", notify);
        await cleanup();
      }
    },
  };
}
