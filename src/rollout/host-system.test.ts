import { readdirSync } from "node:fs";
import os from "node:os";

import { describe, expect, it } from "vitest";

import { runProgram } from "./host-system.js";

const leftovers = (): string[] =>
  readdirSync(os.tmpdir()).filter((name) => name.startsWith(`ogygia-output-${process.pid}-`));

describe("runProgram", () => {
  it("returns the exit code and stdout and stderr in the order written", async () => {
    const result = await runProgram(
      "/bin/sh",
      ["-c", "echo one; echo two >&2; echo three; exit 3"],
      {
        timeoutMs: 10_000,
      },
    );
    expect(result).toEqual({ code: 3, output: "one\ntwo\nthree\n" });
    expect(leftovers()).toEqual([]);
  });

  it("keeps the last 8 KiB of a long output", async () => {
    const result = await runProgram(
      "/bin/sh",
      ["-c", "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done"],
      { timeoutMs: 10_000 },
    );
    expect(result.code).toBe(0);
    expect(result.output.length).toBe(8192);
    expect(result.output.endsWith("line-1999\n")).toBe(true);
  });

  it("passes the environment given", async () => {
    const result = await runProgram("/bin/sh", ["-c", 'printf %s "$OGYGIA_TEST_VALUE"'], {
      env: { ...process.env, OGYGIA_TEST_VALUE: "from the caller" },
      timeoutMs: 10_000,
    });
    expect(result.output).toBe("from the caller");
  });

  it("reports a program that cannot start, and one killed at its timeout, with no exit code", async () => {
    const missing = await runProgram("/nonexistent/program", [], { timeoutMs: 10_000 });
    expect(missing.code).toBeNull();
    expect(missing.output).toMatch(/ENOENT/);
    const killed = await runProgram("/bin/sh", ["-c", "exec sleep 60"], { timeoutMs: 500 });
    expect(killed).toEqual({ code: null, output: "killed by SIGKILL" });
    expect(leftovers()).toEqual([]);
  });
});
