/**
 * The baseline of the ZooKeeper rows of `status.bench.ts`: the read
 * `ogygia status` made before `multiRead`, node by node over
 * `node-zookeeper-client` (one listing per host, one read per field, 500
 * hosts at once), without loading the configuration or rendering.
 *
 *   node dist/bench/lib-zk-node-by-node.js 127.0.0.1:2181 /namespace
 */

import { connectZkSession } from "../src/fleet/index.js";

const [endpoint, namespace] = process.argv.slice(2);
if (endpoint === undefined || namespace === undefined) {
  console.error("usage: lib-zk-node-by-node.js HOST:PORT NAMESPACE");
  process.exit(2);
}
const session = await connectZkSession([endpoint], 120_000);
const hosts = (await session.getChildren(namespace)) ?? [];
let next = 0;
let values = 0;
await Promise.all(
  Array.from({ length: 500 }, async () => {
    while (next < hosts.length) {
      const host = hosts[next] ?? "";
      next += 1;
      const fields = (await session.getChildren(`${namespace}/${host}`)) ?? [];
      await Promise.all(
        fields.map(async (field) => {
          if ((await session.getData(`${namespace}/${host}/${field}`)) !== null) values += 1;
        }),
      );
    }
  }),
);
session.close();
console.log(`${hosts.length} hosts, ${values} values`);
process.exit(0);
