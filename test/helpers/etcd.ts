/**
 * A real etcd server (Debian's etcd-server) on 127.0.0.1 with free ports and
 * a temporary data folder, for integration tests.
 */

import { Etcd3 } from "etcd3";

import {
  canConnect,
  freePort,
  removeDir,
  startProcess,
  tempDir,
  waitFor,
  type ManagedProcess,
  type ServerControl,
} from "./process.js";

export interface EtcdServer extends ServerControl {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  dataDir: string;
  /** A client for seeding and inspecting data; closed by `stop`. */
  client: Etcd3;
}

export async function startEtcd(): Promise<EtcdServer> {
  const dir = await tempDir("etcd");
  const port = await freePort();
  const peerPort = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  let proc: ManagedProcess | undefined;

  const launch = async (): Promise<void> => {
    const started = startProcess("etcd", [
      "--name",
      "ogygia-test",
      "--data-dir",
      `${dir}/data`,
      "--listen-client-urls",
      endpoint,
      "--advertise-client-urls",
      endpoint,
      "--listen-peer-urls",
      `http://127.0.0.1:${peerPort}`,
      "--initial-advertise-peer-urls",
      `http://127.0.0.1:${peerPort}`,
      "--initial-cluster",
      `ogygia-test=http://127.0.0.1:${peerPort}`,
      "--log-level",
      "warn",
    ]);
    proc = started;
    await waitFor(
      `etcd on port ${port}`,
      async () => {
        if (started.child.exitCode !== null) {
          throw new Error(`etcd exited early:\n${started.output()}`);
        }
        return (await canConnect(port)) ? true : undefined;
      },
      { timeoutMs: 20_000 },
    );
  };

  await launch();
  const client = new Etcd3({ hosts: endpoint });
  await waitFor("etcd to answer", async () => {
    await client.get("ogygia-test-probe").string();
    return true;
  });

  return {
    endpoint,
    port,
    dataDir: dir,
    client,
    freeze() {
      proc?.child.kill("SIGSTOP");
    },
    thaw() {
      proc?.child.kill("SIGCONT");
    },
    async pause() {
      proc?.child.kill("SIGCONT");
      await proc?.stop("SIGTERM");
    },
    async resume() {
      await launch();
    },
    async stop() {
      client.close();
      proc?.child.kill("SIGCONT");
      await proc?.stop("SIGTERM");
      await removeDir(dir);
    },
  };
}
