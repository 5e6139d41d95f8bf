import { describe, expect, it } from "vitest";

import { parseConfig } from "../config/index.js";

describe("[ogygia.builder]", () => {
  it("is absent unless the section is there", async () => {
    expect((await parseConfig("", "c.toml")).builder).toBeUndefined();
  });

  it("fills its defaults, leaving systems and max jobs to the host", async () => {
    expect((await parseConfig("[ogygia.builder]\n", "c.toml")).builder).toEqual({
      user: "nix-builder",
      address: undefined,
      protocol: "ssh-ng",
      systems: undefined,
      maxJobs: undefined,
      speedFactor: 1,
      supportedFeatures: [],
      mandatoryFeatures: [],
      hostKeyFile: "/etc/ssh/ssh_host_ed25519_key.pub",
    });
  });

  it.each([
    ['protocol = "http"', "ogygia.builder.protocol"],
    ['systems = ["x86_64 linux"]', "ogygia.builder.systems[0]"],
    ["max_jobs = 0", "ogygia.builder.max_jobs"],
    ['user = "Root Admin"', "ogygia.builder.user"],
    ['address = "a b"', "ogygia.builder.address"],
    ["port = 22", "ogygia.builder.port"],
  ])("refuses %s, naming the key", async (line, key) => {
    await expect(parseConfig(`[ogygia.builder]\n${line}\n`, "c.toml")).rejects.toThrow(key);
  });
});
