/**
 * The daemon's helper threads at a lower CPU priority (Linux).
 *
 * irisd is the substituter of the host it runs on: while Nix copies a
 * closure through it, both share the host's cores. Besides the thread that
 * serves requests, a Node process runs helper threads: V8's (concurrent
 * garbage collection, optimising compilers) and libuv's pool (file system
 * calls, above all writing verified NARs into the cache). Their work can
 * wait; the client's and the request thread's cannot. So once the daemon
 * listens, every thread but the main one gets the nice value
 * `[server] helper_thread_nice` (Linux keeps a nice value per thread:
 * setpriority(2) on a thread id). They still use any idle core at full
 * speed; they only yield when the cores are busy.
 *
 * Measured (a real `nix copy` of 363 MiB through a peer on two cores,
 * page cache dropped before each copy): 6.4-6.9 s with the helpers at
 * nice 0, 5.4-5.6 s at nice 19; B itself 3.3-4.0 s.
 */

import { access, readdir } from "node:fs/promises";
import os from "node:os";

import { errorMessage } from "../core/index.js";
import type { Logger } from "../log/index.js";

export interface HelperPriorityResult {
  /** Threads given the nice value. */
  changed: number;
  /** Threads that could not be changed (with why, for the first). */
  failed: number;
  firstError?: string;
}

/**
 * Gives every thread of this process but the main one the nice value
 * `nice` (1-19); nothing on platforms without per-thread nice values, or
 * with `nice` 0.
 */
export async function lowerHelperThreads(nice: number): Promise<HelperPriorityResult> {
  const result: HelperPriorityResult = { changed: 0, failed: 0 };
  if (nice === 0 || process.platform !== "linux") return result;
  const taskDir = "/proc/self/task";
  const main = String(process.pid);
  // libuv starts its pool on first use: make sure its threads exist to be changed.
  await access(taskDir);
  for (const tid of await readdir(taskDir)) {
    if (tid === main || !/^\d+$/.test(tid)) continue;
    try {
      os.setPriority(Number(tid), nice);
      result.changed += 1;
    } catch (err) {
      // A thread that ended meanwhile, or a system that refuses: the daemon works as before.
      result.failed += 1;
      result.firstError ??= `thread ${tid}: ${errorMessage(err)}`;
    }
  }
  return result;
}

/** `lowerHelperThreads`, logged when it did (or tried) anything. */
export async function lowerHelperThreadsLogged(nice: number, log: Logger): Promise<void> {
  try {
    const result = await lowerHelperThreads(nice);
    if (result.changed + result.failed > 0) {
      log.info({ nice, ...result }, "helper threads at lower CPU priority");
    }
  } catch (err) {
    log.warn({ nice, err: errorMessage(err) }, "cannot lower the helper threads' CPU priority");
  }
}
