import { mkdir, rename, symlink, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterEach, describe, expect, it, vi } from "vitest";

import { Debouncer, StateLinkWatcher } from "./watch.js";
import { tempDir } from "../../test/support/temp.js";

/** A debouncer (settle 100 ms, at most 500 ms) on fake timers, and how often it fired. */
function fakeTimedDebouncer(): { debouncer: Debouncer; fired: () => number } {
  vi.useFakeTimers();
  let count = 0;
  const debouncer = new Debouncer(() => (count += 1), {
    settleMs: 100,
    maxMs: 500,
    now: () => Date.now(),
  });
  return { debouncer, fired: () => count };
}

describe("Debouncer", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("fires once for a burst, after it settles", () => {
    const { debouncer, fired } = fakeTimedDebouncer();
    debouncer.trigger();
    vi.advanceTimersByTime(50);
    debouncer.trigger();
    vi.advanceTimersByTime(99);
    expect(fired()).toBe(0);
    vi.advanceTimersByTime(1);
    expect(fired()).toBe(1);
  });

  it("fires within maxMs however often it is triggered", () => {
    const { debouncer, fired } = fakeTimedDebouncer();
    for (let t = 0; t < 500; t += 50) {
      debouncer.trigger();
      vi.advanceTimersByTime(50);
    }
    expect(fired()).toBe(1);
  });

  it("does not fire after cancel", () => {
    vi.useFakeTimers();
    let fired = 0;
    const debouncer = new Debouncer(() => (fired += 1), { settleMs: 10, maxMs: 20 });
    debouncer.trigger();
    debouncer.cancel();
    vi.advanceTimersByTime(100);
    expect(fired).toBe(0);
  });
});

describe("StateLinkWatcher", () => {
  it("reports a state link replaced by rename, and ignores other files in the folder", async () => {
    const root = await tempDir("watch");
    await mkdir(path.join(root, "run"));
    await mkdir(path.join(root, "nix/var/nix/profiles"), { recursive: true });
    let changes = 0;
    const problems: string[] = [];
    let notify: () => void = () => undefined;
    const watcher = new StateLinkWatcher(root, {
      onChange: () => {
        changes += 1;
        notify();
      },
      onProblem: (message) => problems.push(message),
    });
    try {
      expect(await watcher.ensure()).toBe(true);
      expect(watcher.complete).toBe(true);
      // Unrelated activity in /run does not count.
      await writeFile(path.join(root, "run/sshd.pid"), "1");
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(changes).toBe(0);
      const changed = new Promise<void>((resolve) => (notify = resolve));
      await symlink("/nix/store/x-system", path.join(root, "run/.tmp-link"));
      await rename(path.join(root, "run/.tmp-link"), path.join(root, "run/current-system"));
      await changed;
      expect(changes).toBe(1);
      expect(problems).toEqual([]);
    } finally {
      watcher.close();
    }
  });

  it("reports a missing folder and watches it once it exists", async () => {
    const root = await tempDir("watch");
    await mkdir(path.join(root, "run"));
    const problems: string[] = [];
    const watcher = new StateLinkWatcher(root, {
      onChange: () => undefined,
      onProblem: (message) => problems.push(message),
    });
    try {
      await watcher.ensure();
      expect(watcher.complete).toBe(false);
      expect(problems.join("\n")).toContain("cannot watch /nix/var/nix/profiles");
      await mkdir(path.join(root, "nix/var/nix/profiles"), { recursive: true });
      expect(await watcher.ensure()).toBe(true);
      expect(watcher.complete).toBe(true);
    } finally {
      watcher.close();
    }
  });
});
