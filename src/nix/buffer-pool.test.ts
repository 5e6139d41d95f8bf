import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Writable } from "node:stream";

import { afterEach, describe, expect, it } from "vitest";

import { createBufferPool, type BufferPool } from "./buffer-pool.js";
import { narStream, writeNar } from "./nar-dump.js";
import { tempDirSync } from "../../test/support/temp.js";

const SIZE = 64 * 1024;

describe("the buffer pool", () => {
  it("keeps at most maxFree idle buffers, however many come back", () => {
    const pool = createBufferPool({ bufferSize: SIZE, maxFree: 2 });
    const lent = Array.from({ length: 5 }, () => pool.take());
    for (const buffer of lent) pool.give(buffer);
    expect(pool.free).toBe(2);
  });

  it("lends a returned buffer again, whole, even when a slice of it came back", () => {
    const pool = createBufferPool({ bufferSize: SIZE });
    const buffer = pool.take();
    pool.give(buffer.subarray(0, 10));
    const again = pool.take();
    expect(again.buffer).toBe(buffer.buffer);
    expect(again.length).toBe(SIZE);
  });

  it("drops a buffer that is not of its size", () => {
    const pool = createBufferPool({ bufferSize: SIZE });
    pool.give(Buffer.allocUnsafeSlow(SIZE * 2));
    expect(pool.free).toBe(0);
  });
});

describe("writeNar with a shared pool", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("takes a buffer back only once the write that carried it completed, and lends at most maxInFlight + 1", async () => {
    dir = tempDirSync("pool");
    const file = path.join(dir, "data");
    const data = Buffer.alloc(9 * SIZE + 123);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    writeFileSync(file, data);
    const inner = createBufferPool({ bufferSize: SIZE, maxFree: 64 });
    const pending = new Set<ArrayBufferLike>();
    let early = 0;
    let out = 0;
    let mostOut = 0;
    const pool: BufferPool = {
      bufferSize: SIZE,
      get free() {
        return inner.free;
      },
      take() {
        out += 1;
        mostOut = Math.max(mostOut, out);
        return inner.take();
      },
      give(chunk) {
        if (pending.has(chunk.buffer)) early += 1;
        out -= 1;
        inner.give(chunk);
      },
    };
    const received: Buffer[] = [];
    // A slow sink: each write completes a little later.
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        received.push(Buffer.from(chunk));
        pending.add(chunk.buffer);
        setTimeout(() => {
          pending.delete(chunk.buffer);
          callback();
        }, 2);
      },
    });
    await writeNar(file, sink, { pool, maxInFlight: 2 });
    const expected: Buffer[] = [];
    for await (const chunk of narStream(file)) expected.push(chunk);
    expect(Buffer.concat(received).equals(Buffer.concat(expected))).toBe(true);
    expect(early).toBe(0);
    expect(mostOut).toBeLessThanOrEqual(2 + 1);
    expect(out).toBe(0);
  });
});

describe("writeNar with maxBufferedBytes", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /** Chunks handed to a sink that takes nothing (a client that does not read), before writeNar waits. */
  async function chunksHeld(maxBufferedBytes: number | undefined): Promise<number> {
    dir = tempDirSync("stalled");
    const file = path.join(dir, "data");
    writeFileSync(file, Buffer.alloc(16 * SIZE, 7));
    const sink = new Writable({
      highWaterMark: SIZE,
      write(_chunk: Buffer, _encoding, _callback) {
        // Never completes: the destination is stalled.
      },
    });
    const done = writeNar(file, sink, { chunkSize: SIZE, maxInFlight: 4, maxBufferedBytes });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const held = sink.writableLength / SIZE;
    sink.destroy();
    await done.catch(() => undefined);
    return held;
  }

  it("holds one chunk for a destination that takes nothing, instead of maxInFlight", async () => {
    expect(await chunksHeld(undefined)).toBe(4);
    expect(await chunksHeld(SIZE)).toBe(1);
  });
});
