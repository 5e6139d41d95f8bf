import { writeFileSync } from "node:fs";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { checkCredentialFiles, resolveCredentialPath } from "./credentials.js";
import { tempDirSync } from "../../test/support/temp.js";

describe("credential files", () => {
  const dir = tempDirSync("creds");
  writeFileSync(path.join(dir, "open.password"), "secret\n", { mode: 0o644 });
  writeFileSync(path.join(dir, "closed.password"), "secret\n", { mode: 0o600 });

  it("resolves relative names in systemd's credentials folder, else beside the configuration", () => {
    const credentials = { passwordFile: "pw", baseDir: "/etc/ogygia" };
    expect(resolveCredentialPath("pw", credentials, {})).toBe("/etc/ogygia/pw");
    expect(resolveCredentialPath("pw", credentials, { CREDENTIALS_DIRECTORY: "/run/c" })).toBe(
      "/run/c/pw",
    );
    expect(resolveCredentialPath("/abs/pw", credentials, {})).toBe("/abs/pw");
  });

  it("warns about a secret others may read, and errs on one it cannot read", () => {
    const username = "web01";
    expect(
      checkCredentialFiles(
        "etcd",
        { username, passwordFile: path.join(dir, "closed.password") },
        {},
      ),
    ).toEqual([]);
    const open = checkCredentialFiles(
      "etcd",
      { username, passwordFile: path.join(dir, "open.password") },
      {},
    );
    expect(open.map((p) => p.level)).toEqual(["warning"]);
    expect(open[0]?.message).toContain("readable by others (mode 0644)");
    const missing = checkCredentialFiles(
      "zookeeper",
      { username, passwordFile: path.join(dir, "absent") },
      {},
    );
    expect(missing[0]?.level).toBe("error");
    expect(missing[0]?.message).toContain("[ogygia.zookeeper] password_file");
  });

  it("leaves relative names to run time when systemd's folder is not set (NixOS build)", () => {
    expect(
      checkCredentialFiles("etcd", { username: "a", passwordFile: "fleet-password" }, {}),
    ).toEqual([]);
  });
});
