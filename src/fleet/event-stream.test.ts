import { describe, expect, it } from "vitest";

import { eventStream, type EventSink } from "./event-stream.js";

/** A stream whose sink the test drives; `cleaned` counts cleanups. */
function driven(signal: AbortSignal, maxBuffered = 100) {
  const state: { sink?: EventSink<number>; inner?: AbortSignal; cleaned: number } = { cleaned: 0 };
  const stream = eventStream<number>(
    { signal, maxBuffered, overflowError: () => new Error("overflow") },
    (sink, inner) => {
      state.sink = sink;
      state.inner = inner;
      return () => {
        state.cleaned += 1;
        return Promise.resolve();
      };
    },
  );
  return { stream, state };
}

describe("eventStream", () => {
  it("delivers pushed items in order, then the failure", async () => {
    const { stream, state } = driven(new AbortController().signal);
    const iterator = stream[Symbol.asyncIterator]();
    const first = iterator.next();
    state.sink?.push(1);
    state.sink?.push(2);
    state.sink?.fail(new Error("boom"));
    state.sink?.push(3);
    expect(await first).toEqual({ done: false, value: 1 });
    expect(await iterator.next()).toEqual({ done: false, value: 2 });
    await expect(iterator.next()).rejects.toThrow("boom");
    expect(state.cleaned).toBe(1);
    expect(state.inner?.aborted).toBe(true);
  });

  it("ends without an error when the signal aborts, and cleans up once", async () => {
    const controller = new AbortController();
    const { stream, state } = driven(controller.signal);
    const seen: number[] = [];
    const loop = (async () => {
      for await (const item of stream) {
        seen.push(item);
        if (item === 2) controller.abort();
      }
    })();
    await Promise.resolve();
    state.sink?.push(1);
    state.sink?.push(2);
    state.sink?.push(3);
    await loop;
    expect(seen).toEqual([1, 2]);
    expect(state.cleaned).toBe(1);
  });

  it("tells the source to stop when the consumer leaves the loop", async () => {
    const { stream, state } = driven(new AbortController().signal);
    const loop = (async () => {
      for await (const item of stream) if (item === 1) break;
    })();
    await Promise.resolve();
    state.sink?.push(1);
    await loop;
    expect(state.inner?.aborted).toBe(true);
    expect(state.cleaned).toBe(1);
  });

  it("fails when a slow consumer lets the buffer fill", async () => {
    const { stream, state } = driven(new AbortController().signal, 2);
    const iterator = stream[Symbol.asyncIterator]();
    const first = iterator.next();
    for (let i = 1; i <= 4; i++) state.sink?.push(i);
    expect(await first).toEqual({ done: false, value: 1 });
    expect(await iterator.next()).toEqual({ done: false, value: 2 });
    await expect(iterator.next()).rejects.toThrow("overflow");
  });
});
