import { describe, expect, it } from "vitest";

import { detectHostname, type HostnameEnvironment } from "./hostname.js";

function environment(
  env: NodeJS.ProcessEnv,
  answers: { fqdn?: string; short?: string },
): HostnameEnvironment & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    env,
    calls,
    run: (args) => {
      calls.push(args);
      return Promise.resolve(args.includes("-f") ? answers.fqdn : answers.short);
    },
    gethostname: () => "from-syscall",
  };
}

describe("detectHostname", () => {
  it("prefers $OGYGIA_HOSTNAME and runs no command", async () => {
    const env = environment(
      { OGYGIA_HOSTNAME: " web01.example.com ", HOSTNAME: "x" },
      { fqdn: "y" },
    );
    expect(await detectHostname(env)).toEqual({
      hostname: "web01.example.com",
      source: "OGYGIA_HOSTNAME",
    });
    expect(env.calls).toEqual([]);
  });

  it("uses `hostname -f` next", async () => {
    const env = environment({ HOSTNAME: "short" }, { fqdn: "web01.dc1.example.com", short: "s" });
    expect(await detectHostname(env)).toEqual({
      hostname: "web01.dc1.example.com",
      source: "hostname -f",
    });
  });

  it("falls back to $HOSTNAME, then `hostname`, then the system call", async () => {
    expect(await detectHostname(environment({ HOSTNAME: "shell" }, { short: "s" }))).toEqual({
      hostname: "shell",
      source: "HOSTNAME",
    });
    expect(await detectHostname(environment({ OGYGIA_HOSTNAME: "" }, { short: "s" }))).toEqual({
      hostname: "s",
      source: "hostname",
    });
    expect(await detectHostname(environment({}, {}))).toEqual({
      hostname: "from-syscall",
      source: "gethostname",
    });
  });
});
