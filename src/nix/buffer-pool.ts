/**
 * Fixed-size buffers recycled across NAR transfers.
 *
 * A 1 MiB buffer from `allocUnsafeSlow` is an `mmap`, page faults on first
 * touch and a `munmap` when collected; a server that takes fresh ones for
 * every response spends more time there than copying bytes. The pool keeps
 * at most `maxFree` idle buffers (the bound on what it holds between
 * transfers); buffers lent out are bounded by their users (a NAR writer has
 * at most `maxInFlight + 1`), and one handed back must no longer be used by
 * anything: a writer returns a buffer only from the completion callback of
 * the write that carried it.
 */

export interface BufferPool {
  /** Size of every buffer lent out. */
  readonly bufferSize: number;
  /** Idle buffers held now. */
  readonly free: number;
  /** A buffer of `bufferSize` bytes, recycled or new; its contents are arbitrary. */
  take(): Buffer;
  /**
   * Hands back the buffer `chunk` was cut from (a view starting anywhere in
   * it); dropped when the pool is full or the buffer is not one of its size.
   */
  give(chunk: Buffer): void;
}

export interface BufferPoolOptions {
  bufferSize: number;
  /** Idle buffers kept at most (default 16). */
  maxFree?: number;
}

/** A pool of `bufferSize`-byte buffers keeping at most `maxFree` idle ones. */
export function createBufferPool(options: BufferPoolOptions): BufferPool {
  const { bufferSize } = options;
  const maxFree = options.maxFree ?? 16;
  if (!Number.isSafeInteger(bufferSize) || bufferSize < 1) {
    throw new RangeError(`buffer pool: bufferSize must be a positive integer, got ${bufferSize}`);
  }
  if (!Number.isSafeInteger(maxFree) || maxFree < 0) {
    throw new RangeError(`buffer pool: maxFree must be a non-negative integer, got ${maxFree}`);
  }
  const idle: Buffer[] = [];
  return {
    bufferSize,
    get free() {
      return idle.length;
    },
    take() {
      return idle.pop() ?? Buffer.allocUnsafeSlow(bufferSize);
    },
    give(chunk) {
      // Only whole buffers of ours: an allocUnsafeSlow buffer owns its ArrayBuffer.
      if (idle.length >= maxFree || chunk.buffer.byteLength !== bufferSize) return;
      idle.push(Buffer.from(chunk.buffer, 0, bufferSize));
    },
  };
}
