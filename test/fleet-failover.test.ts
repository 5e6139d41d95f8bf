/**
 * Issue 13, row 1: a hung endpoint (it accepts connections and never
 * answers) listed before a healthy one. `ogygia status` must get the fleet
 * from the healthy endpoint within the timeout, on every backend, whatever
 * order the client tries them in.
 */

import net from "node:net";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { FLEET_HARNESSES, type FleetServer } from "./helpers/fleet.js";
import { freePort } from "./helpers/process.js";
import { uniqueNamespace, type StatusJsonHost } from "./helpers/publish.js";
import { writeConfig } from "./helpers/system-root.js";

const REVISION = "0123456789abcdef0123456789abcdef01234567";

/** A listener that accepts connections and never answers; counts them. */
async function startHungListener(): Promise<{
  port: number;
  accepted: () => number;
  close(): void;
}> {
  const port = await freePort();
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    port,
    accepted: () => accepted,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

describe.each(FLEET_HARNESSES)(
  "status with a hung $label endpoint before a healthy one",
  (harness) => {
    let server: FleetServer;
    let hung: Awaited<ReturnType<typeof startHungListener>>;

    beforeAll(async () => {
      server = await harness.start();
      hung = await startHungListener();
    });

    afterAll(async () => {
      hung.close();
      await server.stop();
    });

    it("reads the fleet from the healthy endpoint every time", async () => {
      const namespace = uniqueNamespace();
      await server.put([
        [`${namespace}/db01.example.com/current`, REVISION],
        [`${namespace}/db01.example.com/booted`, REVISION],
      ]);
      const config = await writeConfig(
        [
          `[ogygia.${harness.kind}]`,
          `endpoints = ["${harness.endpointAt(hung.port)}", "${server.endpoint}"]`,
          `namespace = "${namespace}"`,
          "timeout_seconds = 3",
          "",
        ].join("\n"),
      );
      // Several runs: a client may pick its first endpoint at random.
      for (let run = 0; run < 6; run++) {
        // The hang guard: a run that hangs is killed and fails.
        const result = await runCli(["status", "--json"], {
          env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "observer.example.org" },
          timeoutMs: 30_000,
        });
        expect(result.signal).toBeNull();
        expect(result.code).toBe(0);
        const report = JSON.parse(result.stdout) as {
          mode: string;
          error: string | null;
          hosts: StatusJsonHost[];
        };
        // Fleet data, which only the healthy endpoint can have given.
        expect(report.error).toBeNull();
        expect(report.hosts.find((h) => h.host === "db01.example.com")).toMatchObject({
          current: REVISION,
        });
      }
      // The hung endpoint was tried (the test exercised the hang).
      expect(hung.accepted()).toBeGreaterThan(0);
    });
  },
);
