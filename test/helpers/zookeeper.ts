/**
 * A real ZooKeeper server (Debian's zookeeper) in standalone mode on
 * 127.0.0.1 with a free port and a temporary data folder.
 */

import { writeFile, mkdir } from "node:fs/promises";
import net from "node:net";

import zookeeper from "node-zookeeper-client";

import { freePort, startServer, tempDir, type ServerControl } from "./process.js";

export interface ZooKeeperServer extends ServerControl {
  /** `127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  /** Writes `data` at `path`, creating parents as needed. */
  put(path: string, data: string | Buffer): Promise<void>;
  /**
   * Writes many nodes over one session (parents created once, writes
   * pipelined), for seeding large namespaces quickly.
   */
  putMany(entries: Iterable<[path: string, data: string | Buffer]>): Promise<void>;
  /** Reads a node's data, or null when it does not exist. */
  get(path: string): Promise<Buffer | null>;
  /**
   * The session owning an ephemeral node (hex; all zeros for a persistent
   * node), or null when the node does not exist.
   */
  ephemeralOwner(path: string): Promise<string | null>;
  /** The zxid of a node's last change (hex), or undefined when it does not exist. */
  modifiedZxid(path: string): Promise<string | undefined>;
  /** How many requests the server has received since it started (`srvr`'s `Received`). */
  packetsReceived(): Promise<number>;
}

/** Sends a four-letter word and returns the answer. */
function fourLetterWord(port: number, word: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    let answer = "";
    socket.setTimeout(2000, () => socket.destroy(new Error("4lw timeout")));
    socket.on("connect", () => {
      socket.end(word);
    });
    socket.on("data", (chunk) => (answer += chunk.toString("utf8")));
    socket.on("end", () => {
      resolve(answer);
    });
    socket.on("error", reject);
  });
}

function withClient<T>(
  endpoint: string,
  fn: (client: zookeeper.Client, done: (err: unknown, value?: T) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const client = zookeeper.createClient(endpoint, { sessionTimeout: 10_000 });
    const timer = setTimeout(() => {
      client.close();
      reject(new Error(`ZooKeeper helper: no answer from ${endpoint}`));
    }, 120_000);
    client.once("connected", () => {
      fn(client, (err, value) => {
        clearTimeout(timer);
        client.close();
        if (err)
          reject(err instanceof Error ? err : new Error(`ZooKeeper error: ${JSON.stringify(err)}`));
        else resolve(value as T);
      });
    });
    client.connect();
  });
}

export async function startZooKeeper(): Promise<ZooKeeperServer> {
  const dir = await tempDir("zk");
  const port = await freePort();
  const endpoint = `127.0.0.1:${port}`;
  await mkdir(`${dir}/data`);
  const config = [
    "tickTime=500",
    "minSessionTimeout=1000",
    "maxSessionTimeout=60000",
    `dataDir=${dir}/data`,
    `clientPort=${port}`,
    "clientPortAddress=127.0.0.1",
    "admin.enableServer=false",
    "4lw.commands.whitelist=ruok,stat,srvr",
  ].join("\n");
  await writeFile(`${dir}/zoo.cfg`, `${config}\n`);
  const control = await startServer({
    name: "ZooKeeper",
    port,
    command: "java",
    args: [
      "-Xmx256m",
      "-cp",
      "/usr/share/java/*",
      "org.apache.zookeeper.server.ZooKeeperServerMain",
      `${dir}/zoo.cfg`,
    ],
    dir,
    ready: async () => (await fourLetterWord(port, "ruok")) === "imok",
    timeoutMs: 30_000,
    intervalMs: 200,
  });

  return {
    endpoint,
    port,
    put(path, data) {
      return withClient<undefined>(endpoint, (client, done) => {
        const bytes = typeof data === "string" ? Buffer.from(data) : data;
        client.mkdirp(path, (err) => {
          if (err) {
            done(err);
            return;
          }
          client.setData(path, bytes, (setErr) => {
            done(setErr);
          });
        });
      });
    },
    putMany(entries) {
      const list = [...entries];
      return withClient<undefined>(endpoint, (client, done) => {
        const parents = [...new Set(list.map(([p]) => p.slice(0, p.lastIndexOf("/"))))];
        const mkdirp = (dir: string): Promise<void> =>
          new Promise((resolve, reject) => {
            client.mkdirp(dir, (err) => {
              if (err) reject(new Error(`mkdirp ${dir}: ${err.toString()}`));
              else resolve();
            });
          });
        const create = ([path, data]: [string, string | Buffer]): Promise<void> =>
          new Promise((resolve, reject) => {
            const bytes = typeof data === "string" ? Buffer.from(data) : data;
            client.create(path, bytes, (err) => {
              if (!err) {
                resolve();
                return;
              }
              client.setData(path, bytes, (setErr) => {
                if (setErr) reject(new Error(`setData ${path}: ${setErr.toString()}`));
                else resolve();
              });
            });
          });
        const inBatches = async <T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> => {
          for (let i = 0; i < items.length; i += 500) {
            await Promise.all(items.slice(i, i + 500).map(fn));
          }
        };
        inBatches(parents, mkdirp)
          .then(() => inBatches(list, create))
          .then(
            () => {
              done(null);
            },
            (err: unknown) => {
              done(err);
            },
          );
      });
    },
    get(path) {
      return withClient<Buffer | null>(endpoint, (client, done) => {
        client.getData(path, (err, data) => {
          if (err && "code" in err && err.code === zookeeper.Exception.NO_NODE) done(null, null);
          else done(err, data);
        });
      });
    },
    ephemeralOwner(path) {
      return withClient<string | null>(endpoint, (client, done) => {
        client.exists(path, (err, stat) => {
          // `exists` answers null for a missing node (the typings say otherwise).
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
          done(err, stat ? stat.ephemeralOwner.toString("hex") : null);
        });
      });
    },
    modifiedZxid(path) {
      return withClient<string | undefined>(endpoint, (client, done) => {
        client.exists(path, (err, stat) => {
          // `exists` answers null for a missing node (the typings say otherwise).
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
          done(err, stat ? stat.mzxid.toString("hex") : undefined);
        });
      });
    },
    async packetsReceived() {
      const answer = await fourLetterWord(port, "srvr");
      const match = /^Received: (\d+)$/m.exec(answer);
      if (!match)
        throw new Error(`ZooKeeper helper: no request count in ${JSON.stringify(answer)}`);
      return Number(match[1]);
    },
    ...control,
  };
}
