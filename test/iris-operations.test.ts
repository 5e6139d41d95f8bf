/**
 * ogygia-irisd as an operator meets it: the command line, configuration
 * errors, start-up failures (address taken, store database missing),
 * several listen addresses, systemd readiness, and a graceful SIGTERM that
 * finishes a NAR in flight.
 */

import { createHash } from "node:crypto";
import { mkdir, readFile, readdir } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import {
  httpRequest,
  irisdConfigText,
  makeLargeTree,
  runIrisd,
  startIrisd,
  stopAllIrisd,
  writeIrisdConfig,
} from "./helpers/irisd.js";
import { makeChrootStore, nixDumpDigest, runNix, type ChrootStore } from "./helpers/nix.js";
import {
  canConnect,
  removeDir,
  startProcess,
  tempDir,
  waitFor,
  type ManagedProcess,
} from "./helpers/process.js";

const NOTIFY_LISTENER = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "fixtures/iris/notify-listener.py",
);

let dir: string;
let store: ChrootStore;
let largePath: string;
const helpers: ManagedProcess[] = [];

beforeAll(async () => {
  dir = await tempDir("iris-ops");
  const tree = path.join(dir, "large-tree");
  await makeLargeTree(tree, { files: 48, fileBytes: 2 * 1024 * 1024, seed: "iris-large" });
  store = await makeChrootStore([], { root: path.join(dir, "store") });
  largePath = (await runNix("nix-store", ["--store", store.root, "--add", tree])).stdout
    .toString("utf8")
    .trim();
}, 120_000);

afterEach(async () => {
  await stopAllIrisd();
  await Promise.all(helpers.splice(0).map((p) => p.stop("SIGKILL")));
});

afterAll(async () => {
  await removeDir(dir);
});

describe("the command line", () => {
  it("prints help and the version", async () => {
    const help = await runIrisd(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: ogygia-irisd [--config FILE] [--check-config]");
    const version = await runIrisd(["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("refuses an unknown option with exit status 2", async () => {
    const result = await runIrisd(["--listen", "x"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--listen");
  });

  it("--check-config accepts a valid file, found through $OGYGIA_IRISD_CONFIG", async () => {
    const file = await writeIrisdConfig(irisdConfigText({ storeRoot: store.root }));
    const result = await runIrisd(["--check-config"], { env: { OGYGIA_IRISD_CONFIG: file } });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`configuration ${file} is valid`);
  });

  it("--check-config names the file, line and key of an error, with exit status 78", async () => {
    const file = await writeIrisdConfig('[server]\nlisten = ["127.0.0.1:0"]\npriority = "low"\n');
    const result = await runIrisd(["--check-config", "--config", file]);
    expect(result.code).toBe(78);
    expect(result.stderr).toContain(`${file}:3: server.priority: expected an integer`);
    expect(result.stderr).toContain("hint:");
  });

  it("--check-config reads the signing keys", async () => {
    const file = await writeIrisdConfig(
      irisdConfigText({ storeRoot: store.root, secretKeyFiles: [path.join(dir, "absent.key")] }),
    );
    const result = await runIrisd(["--check-config", "--config", file]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(path.join(dir, "absent.key"));
  });
});

describe("start-up failures", () => {
  it("exits with a clear error when the listen address is taken", async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    try {
      const address = holder.address();
      const port = address !== null && typeof address === "object" ? address.port : 0;
      const file = await writeIrisdConfig(
        irisdConfigText({ storeRoot: store.root, listen: [`127.0.0.1:${port}`] }),
      );
      const result = await runIrisd(["--config", file]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `cannot listen on 127.0.0.1:${port}: the address is already in use`,
      );
      expect(result.stderr).toContain('"code":"ERR_OGYGIA_IRISD_LISTEN"');
    } finally {
      holder.close();
    }
  });

  it("exits with a clear error when the store database is missing", async () => {
    const empty = path.join(dir, "not-a-store");
    await mkdir(empty, { recursive: true });
    const file = await writeIrisdConfig(irisdConfigText({ storeRoot: empty }));
    const result = await runIrisd(["--config", file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `Nix store database ${path.join(empty, "nix/var/nix/db/db.sqlite")} does not exist`,
    );
    expect(result.stderr).toContain("hint");
  });

  it("exits with status 78 on an invalid configuration, naming file and key", async () => {
    const file = await writeIrisdConfig('[server]\nlisten = ["nowhere"]\n');
    const result = await runIrisd(["--config", file]);
    expect(result.code).toBe(78);
    expect(result.stderr).toContain(`${file}:2: server.listen[0]`);
  });

  it("exits when the configuration file named does not exist", async () => {
    const result = await runIrisd(["--config", path.join(dir, "absent.toml")]);
    expect(result.code).toBe(78);
    expect(result.stderr).toContain("does not exist");
  });
});

describe("listening", () => {
  it("serves on several addresses, IPv6 included", async () => {
    const irisd = await startIrisd({ storeRoot: store.root, listen: ["127.0.0.1:0", "[::1]:0"] });
    expect(irisd.urls).toHaveLength(2);
    expect(irisd.urls[1]).toMatch(/^http:\/\/\[::1\]:\d+$/);
    for (const url of irisd.urls) {
      expect((await httpRequest(`${url}/nix-cache-info`)).status).toBe(200);
    }
  });
});

describe("helper threads", () => {
  /** Nice value of each thread of `pid` (field 19 of /proc/<pid>/task/<tid>/stat). */
  async function niceValues(pid: number): Promise<Map<number, number>> {
    const values = new Map<number, number>();
    for (const tid of await readdir(`/proc/${pid}/task`)) {
      const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      values.set(Number(tid), Number(fields[16]));
    }
    return values;
  }

  it("run at helper_thread_nice (default 19) while the request thread keeps its priority", async () => {
    const irisd = await startIrisd({ storeRoot: store.root });
    await waitFor("the priority log line", () =>
      irisd.logs().find((l) => l.msg === "helper threads at lower CPU priority"),
    );
    const nice = await niceValues(irisd.pid);
    expect(nice.get(irisd.pid)).toBe(0);
    const helpers = [...nice].filter(([tid]) => tid !== irisd.pid);
    // V8's platform threads and libuv's pool at least.
    expect(helpers.length).toBeGreaterThanOrEqual(8);
    expect(helpers.every(([, value]) => value === 19)).toBe(true);
    // The daemon still serves.
    expect((await httpRequest(`${irisd.url}/nix-cache-info`)).status).toBe(200);
  });

  it("are left alone with helper_thread_nice = 0", async () => {
    const irisd = await startIrisd({ storeRoot: store.root, helperThreadNice: 0 });
    expect((await httpRequest(`${irisd.url}/nix-cache-info`)).status).toBe(200);
    const nice = await niceValues(irisd.pid);
    expect([...nice.values()].every((value) => value === 0)).toBe(true);
    expect(irisd.logs().some((l) => l.msg === "helper threads at lower CPU priority")).toBe(false);
  });
});

describe("systemd readiness", () => {
  async function listener(): Promise<{
    socket: string;
    messages: () => { data: string; pid: number }[];
  }> {
    const socket = path.join(await tempDir("iris-notify"), "notify.sock");
    const proc = startProcess("python3", [NOTIFY_LISTENER, socket]);
    helpers.push(proc);
    await waitFor("the notify listener", () =>
      proc.output().includes("listening") ? true : undefined,
    );
    return {
      socket,
      messages: () =>
        proc
          .output()
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as { data: string; pid: number }),
    };
  }

  it("sends READY=1 with its pid once it listens, and STOPPING=1 on SIGTERM", async () => {
    const notify = await listener();
    const irisd = await startIrisd({
      storeRoot: store.root,
      env: { NOTIFY_SOCKET: notify.socket },
    });
    const ready = await waitFor("READY=1", () =>
      notify.messages().find((m) => m.data.split("\n").includes("READY=1")),
    );
    expect(ready.data.split("\n")).toContain(`MAINPID=${irisd.pid}`);
    expect((await httpRequest(`${irisd.url}/nix-cache-info`)).status).toBe(200);
    expect(await irisd.stop("SIGTERM")).toBe(0);
    await waitFor("STOPPING=1", () =>
      notify.messages().find((m) => m.data.split("\n").includes("STOPPING=1")),
    );
  });

  it("keeps serving, with a warning, when systemd-notify cannot be run", async () => {
    const notify = await listener();
    const irisd = await startIrisd({
      storeRoot: store.root,
      env: { NOTIFY_SOCKET: notify.socket, PATH: path.join(dir, "empty-path") },
    });
    await waitFor("the warning", () =>
      irisd.logs().find((l) => l.msg.startsWith("could not notify systemd")),
    );
    expect((await httpRequest(`${irisd.url}/nix-cache-info`)).status).toBe(200);
    expect(notify.messages()).toEqual([]);
  });
});

describe("graceful stop", () => {
  it("on SIGTERM stops accepting, finishes the NAR in flight, then exits 0", async () => {
    const irisd = await startIrisd({ storeRoot: store.root });
    const expected = await nixDumpDigest(path.join(store.root, largePath));
    const narinfo = (
      await httpRequest(`${irisd.url}/${path.basename(largePath).slice(0, 32)}.narinfo`)
    ).body.toString();
    const narUrl = `${irisd.url}/${/^URL: (.*)$/m.exec(narinfo)?.[1] ?? ""}`;
    const received = await new Promise<{ sha256: string; size: number }>((resolve, reject) => {
      const req = http.get(narUrl, { agent: false });
      req.on("error", reject);
      req.on("response", (res) => {
        const hash = createHash("sha256");
        let size = 0;
        let signalled = false;
        res.on("data", (chunk: Buffer) => {
          hash.update(chunk);
          size += chunk.length;
          if (signalled) return;
          signalled = true;
          res.pause();
          process.kill(irisd.pid, "SIGTERM");
          waitFor("the listener to close", async () =>
            (await canConnect(irisd.port)) ? undefined : true,
          )
            .then(() => {
              // Still running: the transfer holds it.
              expect(irisd.process.child.exitCode).toBeNull();
              res.resume();
            })
            .catch(reject);
        });
        res.on("error", reject);
        res.on("end", () => {
          resolve({ sha256: hash.digest("hex"), size });
        });
      });
    });
    expect(received).toEqual(expected);
    expect(await irisd.exited).toBe(0);
    const messages = irisd.logs().map((l) => l.msg);
    expect(messages).toContain("stopping: finishing requests in flight");
    expect(messages).toContain("stopped");
  });
});
