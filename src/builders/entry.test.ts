import { describe, expect, it } from "vitest";

import {
  decodeHostKey,
  hostKeyLine,
  machinesFile,
  parseBuilderEntry,
  serializeBuilderEntry,
  type BuilderEntry,
} from "./entry.js";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOmfpbB8F/kw7AL93SctuomQtp0Cs9tOdT7qD6rUD3tF";
const ENTRY: BuilderEntry = {
  uri: "ssh-ng://nix-builder@10.42.0.2",
  systems: ["x86_64-linux", "i686-linux"],
  maxJobs: 8,
  speedFactor: 2,
  supportedFeatures: ["kvm", "big-parallel"],
  mandatoryFeatures: [],
  publicHostKey: Buffer.from(KEY).toString("base64"),
};

const bytes = (value: unknown): Uint8Array =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value));

describe("parseBuilderEntry", () => {
  it("round-trips a published entry", () => {
    expect(parseBuilderEntry(bytes(serializeBuilderEntry(ENTRY)))).toEqual(ENTRY);
  });

  it("ignores unknown keys from newer publishers", () => {
    expect(parseBuilderEntry(bytes({ ...ENTRY, future: 1 }))).toEqual(ENTRY);
  });

  it.each([
    ["not JSON", "{", "entry is not JSON"],
    ["an array", [], "not a JSON object"],
    ["a bad scheme", { ...ENTRY, uri: "http://nix-builder@h" }, "uri"],
    ["no user", { ...ENTRY, uri: "ssh-ng://h" }, "uri"],
    ["a space in the URI", { ...ENTRY, uri: "ssh://u@h x" }, "uri"],
    ["an option in the address", { ...ENTRY, uri: "ssh://u@-oProxyCommand=x" }, "uri"],
    ["systems as a string", { ...ENTRY, systems: "x86_64-linux" }, "systems is not a list"],
    ["no systems", { ...ENTRY, systems: [] }, "systems is empty"],
    ["a comma in a system", { ...ENTRY, systems: ["a,b"] }, "systems holds"],
    ["maxJobs as a string", { ...ENTRY, maxJobs: "4" }, "maxJobs"],
    ["maxJobs 0", { ...ENTRY, maxJobs: 0 }, "maxJobs"],
    ["a negative speed", { ...ENTRY, speedFactor: -1 }, "speedFactor"],
    ["a feature with a space", { ...ENTRY, supportedFeatures: ["a b"] }, "supportedFeatures"],
    ["a key that is not base64", { ...ENTRY, publicHostKey: "!!" }, "publicHostKey"],
    [
      "base64 of something else",
      { ...ENTRY, publicHostKey: Buffer.from("hello").toString("base64") },
      "publicHostKey",
    ],
    [
      "a key with a second line",
      { ...ENTRY, publicHostKey: Buffer.from(`${KEY}\n${KEY}`).toString("base64") },
      "publicHostKey",
    ],
  ])("refuses %s", (_name, value, problem) => {
    const parsed = parseBuilderEntry(bytes(value));
    expect(parsed).toHaveProperty("problem");
    expect((parsed as { problem: string }).problem).toContain(problem);
  });

  it("refuses an entry over 16 KiB", () => {
    expect(parseBuilderEntry(new Uint8Array(16 * 1024 + 1))).toHaveProperty("problem");
  });
});

describe("host keys", () => {
  it("keeps type and key of a .pub file, dropping the comment", () => {
    expect(hostKeyLine(`${KEY} root@host\n`)).toBe(KEY);
    expect(hostKeyLine("not a key")).toBeUndefined();
    expect(decodeHostKey(Buffer.from(`${KEY}\n`).toString("base64"))).toBe(KEY);
  });
});

describe("machinesFile", () => {
  it("writes Nix's eight fields, '-' for empty lists, best builders first", () => {
    const slow = { ...ENTRY, uri: "ssh://nix-builder@slow", speedFactor: 1, supportedFeatures: [] };
    const text = machinesFile(
      [
        { host: "slow", entry: slow },
        { host: "fast", entry: ENTRY },
      ],
      "/root/.ssh/id",
    );
    expect(text).toBe(
      `ssh-ng://nix-builder@10.42.0.2 x86_64-linux,i686-linux /root/.ssh/id 8 2 kvm,big-parallel - ${ENTRY.publicHostKey}\n` +
        `ssh://nix-builder@slow x86_64-linux,i686-linux /root/.ssh/id 8 1 - - ${ENTRY.publicHostKey}\n`,
    );
    expect(machinesFile([])).toBe("");
  });
});
