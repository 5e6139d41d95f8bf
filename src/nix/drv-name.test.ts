import { describe, expect, it } from "vitest";

import { compareVersions, packageOfName, parseDrvName } from "./drv-name.js";

describe("parseDrvName", () => {
  it.each([
    ["ripgrep-1.2", "ripgrep", "1.2"],
    ["rip-grep-1.2", "rip-grep", "1.2"],
    ["7zip_archiver-0.2", "7zip_archiver", "0.2"],
    ["gcc-1-2", "gcc", "1-2"],
    ["bash--1-2", "bash", "-1-2"],
    ["xvidtune-?1-2", "xvidtune", "?1-2"],
    ["apache-httpd-2.0.48", "apache-httpd", "2.0.48"],
    ["hello", "hello", ""],
    ["hello-", "hello-", ""],
  ])("%s → %s %s (Nix's own examples)", (text, name, version) => {
    expect(parseDrvName(text)).toEqual({ name, version });
  });
});

describe("compareVersions", () => {
  it.each([
    ["1.0", "2.3", -1],
    ["2.1", "2.3", -1],
    ["2.3", "2.3", 0],
    ["2.5", "2.3", 1],
    ["3.1", "2.3", 1],
    ["2.3.1", "2.3", 1],
    ["2.3.1", "2.3a", 1],
    ["2.3pre1", "2.3", -1],
    ["2.3", "2.3pre1", 1],
    ["2.3pre3", "2.3pre12", -1],
    ["2.3a", "2.3c", -1],
    ["2.3pre1", "2.3c", -1],
    ["2.3pre1", "2.3q", -1],
    ["3.0.10", "3.0.8", 1],
  ])("%s vs %s is %d (as builtins.compareVersions)", (a, b, expected) => {
    expect(compareVersions(a, b)).toBe(expected);
  });
});

describe("packageOfName", () => {
  it("strips an output suffix before parsing, as nix store diff-closures does", () => {
    expect(packageOfName("openssl-3.0.7-bin")).toEqual({
      name: "openssl",
      version: "3.0.7",
      output: "bin",
    });
    expect(packageOfName("libfoo-1.0")).toEqual({ name: "libfoo", version: "1.0", output: "" });
    expect(packageOfName("system-units")).toEqual({ name: "system", version: "", output: "units" });
    expect(packageOfName("glibc-2.35-lib64")).toEqual({
      name: "glibc",
      version: "2.35",
      output: "lib64",
    });
  });
});
