/**
 * The minimum transfer rate of a NAR from a peer. A provider that brings
 * fewer than `bytesPerSec × window` bytes in a window (a peer dripping
 * bytes, never quite idle long enough for the idle timeout) is cut, and the
 * download continues from the next provider at the byte reached, so the
 * clients sharing it are not held by a stuck transfer.
 */

import { OgygiaError } from "../../core/index.js";

export interface MinRate {
  /** 0 turns the check off. */
  bytesPerSec: number;
  windowMs: number;
  /** Called when a provider was cut for being slow (metrics, logs). */
  onSlow?(peer: string, bytesInWindow: number): void;
}

export interface RateWatch {
  /** Bytes arrived. */
  add(bytes: number): void;
  stop(): void;
}

/** The error a slow provider is aborted with. */
export function slowPeerError(peer: string, rate: MinRate, bytes: number): OgygiaError {
  const seconds = rate.windowMs / 1000;
  return new OgygiaError(
    "ERR_OGYGIA_IRISD_PEER",
    `peer ${peer}: ${bytes} bytes in ${seconds} s, below the minimum of ${rate.bytesPerSec} bytes/s`,
  );
}

/**
 * Watches one provider's transfer: once per window, `onTooSlow` is called
 * (and the watch stops) when the window brought too few bytes.
 */
export function watchRate(rate: MinRate, onTooSlow: (bytesInWindow: number) => void): RateWatch {
  let bytes = 0;
  if (rate.bytesPerSec <= 0) return { add: () => undefined, stop: () => undefined };
  const needed = (rate.bytesPerSec * rate.windowMs) / 1000;
  const timer = setInterval(() => {
    if (bytes < needed) {
      clearInterval(timer);
      onTooSlow(bytes);
      return;
    }
    bytes = 0;
  }, rate.windowMs);
  timer.unref();
  return {
    add(n) {
      bytes += n;
    },
    stop() {
      clearInterval(timer);
    },
  };
}
