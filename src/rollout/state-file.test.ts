import { readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { loadRecord, saveRecord, type AgentRecord } from "./state-file.js";
import { tempDir } from "../../test/support/temp.js";

const record = (state: AgentRecord["state"]): AgentRecord => ({
  state,
  rollout: "r1",
  target: "/nix/store/00000000000000000000000000000000-new",
  previous: "/nix/store/11111111111111111111111111111111-old",
  previousProfile: null,
  error: null,
  startedAt: "2026-12-03T00:00:00.000Z",
  changedAt: "2026-12-03T00:00:01.000Z",
  finishedAt: null,
});

describe("the agent's record on disk", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  const stateDir = async (): Promise<string> => {
    const dir = await tempDir("state-file");
    dirs.push(dir);
    return path.join(dir, "var/lib/ogygia/update");
  };

  it("replaces the record, synced or not, leaving no temporary file", async () => {
    const dir = await stateDir();
    expect(loadRecord(dir)).toBeNull();
    await saveRecord(dir, record("realising"), { durable: false });
    expect(loadRecord(dir)).toEqual(record("realising"));
    await saveRecord(dir, record("confirming"), { durable: true });
    expect(loadRecord(dir)).toEqual(record("confirming"));
    await saveRecord(dir, record("confirmed"), { durable: false });
    expect(loadRecord(dir)?.state).toBe("confirmed");
    expect(await readdir(dir)).toEqual(["state.json"]);
  });

  it("makes its folder again when it was removed after a first write", async () => {
    const dir = await stateDir();
    await saveRecord(dir, record("realising"), { durable: false });
    await rm(dir, { recursive: true });
    await saveRecord(dir, record("checking"), { durable: false });
    expect(loadRecord(dir)?.state).toBe("checking");
  });

  it("names a damaged record instead of acting on it", async () => {
    const dir = await stateDir();
    await saveRecord(dir, record("checking"), { durable: false });
    await writeFile(path.join(dir, "state.json"), "");
    expect(() => loadRecord(dir)).toThrow(/state\.json is damaged/);
  });
});
