/**
 * A real OpenSSH server (Debian's /usr/sbin/sshd) on 127.0.0.1 and a free
 * port, for the builders' tests: its own host key, configuration and
 * authorized keys in a temporary folder, no PAM, logging in as the user
 * running the tests (root in CI) with a test key. Sessions get
 * `NIX_CONF_DIR` pointing at a test nix.conf (no sandbox, no substituters),
 * so `nix-daemon --stdio` on the "remote" side builds as the tests need.
 */

import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

import { NIX_TEST_CONFIG } from "./nix.js";
import { canConnect, freePort, startServer, tempDir, type ServerControl } from "./process.js";

const run = promisify(execFile);

export const SSHD = "/usr/sbin/sshd";

export interface SshServer extends ServerControl {
  port: number;
  dir: string;
  /** The user to log in as (the one running the tests). */
  user: string;
  /** The server's public host key file (`ssh-ed25519 AAAA... comment`). */
  hostKeyFile: string;
  /** The client's private key, authorized for `user`. */
  clientKey: string;
  /** `NIX_SSHOPTS` for Nix and the probes: the port. */
  sshOptions: string;
}

async function keygen(file: string): Promise<void> {
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "ogygia-test", "-f", file]);
}

export async function startSshd(): Promise<SshServer> {
  const dir = await tempDir("sshd");
  const port = await freePort();
  const hostKey = path.join(dir, "host_key");
  const clientKey = path.join(dir, "client_key");
  await keygen(hostKey);
  await keygen(clientKey);
  await writeFile(path.join(dir, "authorized_keys"), await readFile(`${clientKey}.pub`));
  await mkdir(path.join(dir, "nix-conf"));
  await writeFile(path.join(dir, "nix-conf/nix.conf"), `${NIX_TEST_CONFIG}\n`);
  // Privilege separation needs this folder; Debian's service creates it.
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  const config = path.join(dir, "sshd_config");
  await writeFile(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
      "UsePAM no",
      // The temporary folder's modes are not what sshd wants for a home.
      "StrictModes no",
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      `SetEnv NIX_CONF_DIR=${path.join(dir, "nix-conf")}`,
      "",
    ].join("\n"),
  );
  const control = await startServer({
    name: "sshd",
    port,
    command: SSHD,
    args: ["-D", "-e", "-f", config],
    dir,
    ready: () => canConnect(port),
    timeoutMs: 10_000,
  });
  return {
    ...control,
    port,
    dir,
    user: os.userInfo().username,
    hostKeyFile: `${hostKey}.pub`,
    clientKey,
    sshOptions: `-p ${port}`,
  };
}
