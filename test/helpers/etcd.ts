/**
 * A real etcd server (Debian's etcd-server) on 127.0.0.1 with free ports and
 * a temporary data folder, for integration tests.
 */

import { Etcd3 } from "etcd3";

import {
  canConnect,
  freePort,
  startServer,
  tempDir,
  waitFor,
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
  const control = await startServer({
    name: "etcd",
    port,
    command: "etcd",
    args: [
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
    ],
    dir,
    ready: () => canConnect(port),
    timeoutMs: 20_000,
  });
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
    ...control,
    async stop() {
      client.close();
      await control.stop();
    },
  };
}
