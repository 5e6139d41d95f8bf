/**
 * Reference-counted regions of recycled 1 MiB buffers ("slabs") for NAR
 * bytes from peers.
 *
 * A socket reads straight into a region of a slab (`peer-stream.ts`), so a
 * download allocates no buffer per socket read: V8 counts every new read
 * buffer as external memory, and that pressure started a full garbage
 * collection about every 64 MiB downloaded. A slab goes back to the pool
 * once nothing references any byte of it: whoever keeps a view past the
 * call that handed it over (the download's memory window, a queued cache
 * write, a socket write in flight) takes a reference with `ref` and drops it
 * with `unref` once done. `ref` and `unref` of a buffer that is not a
 * slab's (a zstd stream's output, a test's chunk) do nothing, so callers
 * need not know where a chunk came from. A reference never dropped (a write
 * whose callback never ran) only keeps its slab out of the pool: the
 * garbage collector takes it like any other buffer.
 */

import { createBufferPool, type BufferPool } from "../../nix/index.js";

/** Size of every slab. */
export const SLAB_BYTES = 1024 * 1024;
/** Idle slabs kept for reuse. */
const MAX_IDLE_SLABS = 32;

export class Slabs {
  private readonly pool: BufferPool;
  /** References per live slab (by its ArrayBuffer). */
  private readonly refs = new Map<ArrayBufferLike, number>();
  private current: Buffer | undefined;
  private cursor = 0;

  constructor(slabBytes = SLAB_BYTES, maxIdle = MAX_IDLE_SLABS) {
    this.pool = createBufferPool({ bufferSize: slabBytes, maxFree: maxIdle });
  }

  /** Slabs referenced by anything but the cursor (tests). */
  get live(): number {
    const current = this.current;
    const cursorOnly = current !== undefined && this.refs.get(current.buffer) === 1;
    return this.refs.size - (cursorOnly ? 1 : 0);
  }

  /**
   * A fresh region of `size` bytes (at most a slab), holding one reference:
   * drop it with `unref` when the region is no longer read into.
   */
  region(size: number): Buffer {
    const bytes = Math.max(1, Math.min(size, this.pool.bufferSize));
    let slab = this.current;
    if (slab === undefined || this.pool.bufferSize - this.cursor < bytes) {
      // The cursor's own reference on the slab it leaves goes.
      if (slab !== undefined) this.unref(slab);
      slab = this.pool.take();
      this.refs.set(slab.buffer, 1);
      this.current = slab;
      this.cursor = 0;
    }
    const region = slab.subarray(this.cursor, this.cursor + bytes);
    this.cursor += bytes;
    this.ref(region);
    return region;
  }

  /** Whether `chunk` is a view into a live slab. */
  owns(chunk: Buffer): boolean {
    return this.refs.has(chunk.buffer);
  }

  /** One more reference on the slab `chunk` is a view of (none when it is not a slab's). */
  ref(chunk: Buffer): void {
    const count = this.refs.get(chunk.buffer);
    if (count !== undefined) this.refs.set(chunk.buffer, count + 1);
  }

  /** Drops a reference taken by `region` or `ref`; the last one returns the slab to the pool. */
  unref(chunk: Buffer): void {
    const count = this.refs.get(chunk.buffer);
    if (count === undefined) return;
    if (count > 1) {
      this.refs.set(chunk.buffer, count - 1);
      return;
    }
    this.refs.delete(chunk.buffer);
    this.pool.give(chunk);
  }
}

/** The slabs every peer download of this process shares. */
export const peerSlabs = new Slabs();
