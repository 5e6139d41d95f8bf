import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { spawnHostname } from "./hostname.js";
import {
  canonicalNameFromFiles,
  canonicalNameFromSystemFiles,
  hostsServices,
  officialName,
  type ResolverFiles,
} from "./hosts-file.js";
import { tempDirSync } from "../../test/support/temp.js";

const NSSWITCH = "passwd: files\nhosts:          files mdns4_minimal [NOTFOUND=return] dns\n";
const NIXOS_NSSWITCH = "hosts:     mymachines files myhostname dns\n";
const NIXOS_HOSTS = "127.0.0.1 localhost\n::1 localhost\n127.0.0.2 web01.example.org web01\n";

function files(hosts: string, nsswitch = NSSWITCH, machines?: string[] | null): ResolverFiles {
  return { hosts, nsswitch, machines };
}

describe("officialName", () => {
  it("is the first name of the first line listing the name, as official name or alias", () => {
    expect(officialName(NIXOS_HOSTS, "web01")).toBe("web01.example.org");
    expect(officialName(NIXOS_HOSTS, "web01.example.org")).toBe("web01.example.org");
    expect(officialName("127.0.1.1 web01 other\n127.0.0.2 late.example web01\n", "web01")).toBe(
      "web01",
    );
  });

  it("compares names ignoring case and keeps the official name's case", () => {
    expect(officialName("127.0.0.2 Web01.Example.ORG WEB01\n", "web01")).toBe("Web01.Example.ORG");
  });

  it("skips comments, blank lines and lines without names; splits on tabs", () => {
    const text =
      "# 127.0.0.3 commented.example web01\n\n10.0.0.1\n127.0.0.2\tright.example\t web01 # web02\n";
    expect(officialName(text, "web01")).toBe("right.example");
    expect(officialName(text, "web02")).toBeUndefined();
  });

  it("is undefined when the first line listing the name is IPv6 or not an address", () => {
    expect(officialName("::1 v6.example web01\n127.0.0.2 v4.example web01\n", "web01")).toBe(
      undefined,
    );
    expect(officialName("127.1 odd.example web01\n", "web01")).toBeUndefined();
    expect(officialName("127.0.0.01 odd.example web01\n", "web01")).toBeUndefined();
  });

  it("is undefined when no line lists the name, a longer name or a substring included", () => {
    expect(officialName("127.0.0.2 web011.example web011 xweb01\n", "web01")).toBeUndefined();
  });

  it("does not take a carriage return as the end of a name, as glibc does not either", () => {
    expect(officialName("127.0.0.2 web01.example web01\r\n", "web01")).toBe("web01.example");
  });
});

describe("hostsServices", () => {
  it("lists the services and actions of the one hosts line", () => {
    expect(hostsServices(NSSWITCH)).toEqual(["files", "mdns4_minimal", "[NOTFOUND=return]", "dns"]);
    expect(hostsServices("hosts: files[SUCCESS=continue] dns # comment\n")).toEqual([
      "files",
      "[SUCCESS=continue]",
      "dns",
    ]);
  });

  it("is undefined without a hosts line or with two", () => {
    expect(hostsServices("passwd: files\n# hosts: files\n")).toBeUndefined();
    expect(hostsServices("hosts: files\nhosts: dns\n")).toBeUndefined();
  });
});

describe("canonicalNameFromFiles", () => {
  it("answers when the hosts line starts with files", () => {
    expect(canonicalNameFromFiles("web01", files(NIXOS_HOSTS))).toBe("web01.example.org");
  });

  it("answers after mymachines (NixOS' default) unless a machine of that name is registered", () => {
    expect(canonicalNameFromFiles("web01", files(NIXOS_HOSTS, NIXOS_NSSWITCH))).toBe(
      "web01.example.org",
    );
    expect(canonicalNameFromFiles("web01", files(NIXOS_HOSTS, NIXOS_NSSWITCH, ["db"]))).toBe(
      "web01.example.org",
    );
    expect(
      canonicalNameFromFiles("web01", files(NIXOS_HOSTS, NIXOS_NSSWITCH, ["WEB01"])),
    ).toBeUndefined();
    expect(canonicalNameFromFiles("web01", files(NIXOS_HOSTS, NIXOS_NSSWITCH, null))).toBe(
      undefined,
    );
  });

  it("does not answer when another service or an action comes first", () => {
    for (const nsswitch of [
      "hosts: dns files\n",
      "hosts: mymachines resolve [!UNAVAIL=return] files myhostname dns\n",
      "hosts: files [SUCCESS=continue] dns\n",
      "passwd: files\n",
    ]) {
      expect(canonicalNameFromFiles("web01", files(NIXOS_HOSTS, nsswitch)), nsswitch).toBe(
        undefined,
      );
    }
  });

  it("does not answer without both files, for an address or for an odd name", () => {
    expect(canonicalNameFromFiles("web01", { ...files(NIXOS_HOSTS), hosts: undefined })).toBe(
      undefined,
    );
    expect(canonicalNameFromFiles("web01", { ...files(NIXOS_HOSTS), nsswitch: undefined })).toBe(
      undefined,
    );
    expect(canonicalNameFromFiles("127.0.0.2", files(NIXOS_HOSTS))).toBeUndefined();
    expect(canonicalNameFromFiles("web01.", files(NIXOS_HOSTS))).toBeUndefined();
    expect(canonicalNameFromFiles("we b01", files(NIXOS_HOSTS))).toBeUndefined();
  });
});

describe("canonicalNameFromSystemFiles", () => {
  it("gives what `hostname -f` prints on this machine, when it answers at all", async () => {
    const fromFiles = canonicalNameFromSystemFiles(os.hostname());
    const printed = await spawnHostname(["-f"]);
    if (fromFiles !== undefined) expect(fromFiles).toBe(printed);
  });

  // Real glibc and the real `hostname -f`, with fixture files bind-mounted over
  // /etc in a private mount and UTS namespace (root and util-linux only).
  const canUnshare =
    process.getuid?.() === 0 &&
    spawnSync("unshare", ["-mu", "true"], { stdio: "ignore" }).status === 0;

  it.skipIf(!canUnshare)("agrees with `hostname -f` over fixture files", () => {
    const dir = tempDirSync("hosts");
    try {
      const cases: { name: string; hosts: string; nsswitch?: string }[] = [
        { name: "web01", hosts: NIXOS_HOSTS },
        { name: "web01", hosts: NIXOS_HOSTS, nsswitch: "hosts: mymachines files dns\n" },
        { name: "web01", hosts: "127.0.0.2 Web01.Example.ORG WEB01\n" },
        { name: "web01", hosts: "# 127.0.0.3 no.example web01\n127.0.0.2\tyes.example  web01 #\n" },
        { name: "web01", hosts: "127.0.1.1 web01 other.example\n127.0.0.2 late.example web01\n" },
        { name: "web01", hosts: "10.1.2.3 web011.example web011\n127.0.0.2 web01.lan web01\n" },
      ];
      for (const [i, c] of cases.entries()) {
        const hostsFile = path.join(dir, `hosts-${i}`);
        const nsswitchFile = path.join(dir, `nsswitch-${i}`);
        const nsswitch = c.nsswitch ?? NSSWITCH;
        writeFileSync(hostsFile, c.hosts);
        writeFileSync(nsswitchFile, nsswitch);
        const script =
          `mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/nsswitch.conf && ` +
          `hostname "$3" && exec hostname -f`;
        const result = spawnSync(
          "unshare",
          ["-mu", "sh", "-c", script, "sh", hostsFile, nsswitchFile, c.name],
          { encoding: "utf8" },
        );
        const expected = canonicalNameFromFiles(c.name, {
          hosts: c.hosts,
          nsswitch,
          machines: undefined,
        });
        expect(expected, c.hosts).toBeDefined();
        expect(result.stdout.trim(), c.hosts).toBe(expected);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
