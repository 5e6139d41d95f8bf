/**
 * A real etcd server (Debian's etcd-server) on 127.0.0.1 with free ports and
 * a temporary data folder, for integration tests.
 */

import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import {
  EtcdClient,
  type RangeKeyValue,
  type TlsOptions,
} from "../../src/fleet/etcd-client/index.js";

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
  client: EtcdTestClient;
}

/** Plain calls for seeding and inspecting etcd in tests and benchmarks. */
export interface EtcdTestClient {
  put(key: string, value: string | Uint8Array): Promise<void>;
  /** The key's value as UTF-8 text, or null when it does not exist. */
  get(key: string): Promise<string | null>;
  /** The key as etcd holds it (revisions, lease), or undefined. */
  getKeyValue(key: string): Promise<RangeKeyValue | undefined>;
  /** Revokes a lease given in decimal, deleting its keys. */
  revokeLease(id: string): Promise<void>;
  /** Calls `onPut` with each value put at `key`; resolves once the watch is in place. */
  watchPuts(key: string, onPut: (value: Buffer) => void): Promise<{ cancel(): void }>;
  /** The client itself, for what the calls above do not cover. */
  raw: EtcdClient;
}

/** A test client over `client` (which it closes with `raw.close()`). */
export function etcdTestClient(client: EtcdClient): EtcdTestClient {
  const bytes = (text: string | Uint8Array): Uint8Array =>
    typeof text === "string" ? Buffer.from(text) : text;
  const getKeyValue = async (key: string): Promise<RangeKeyValue | undefined> =>
    (await client.range({ key: bytes(key) })).kvs[0];
  return {
    raw: client,
    async put(key, value) {
      await client.put({ key: bytes(key), value: bytes(value) });
    },
    async get(key) {
      return (await getKeyValue(key))?.value.toString() ?? null;
    },
    getKeyValue,
    revokeLease: (id) => client.leaseRevoke(BigInt(id)),
    watchPuts: (key, onPut) =>
      new Promise((resolve, reject) => {
        const watcher = client.watch(
          { key: bytes(key) },
          {
            onEvents: (events) => {
              for (const event of events) {
                if (!event.deleted) onPut(Buffer.from(event.value));
              }
            },
            onConnected: () => {
              resolve(watcher);
            },
            onCanceled: reject,
          },
        );
      }),
  };
}

/** The client's TLS options for `files`: the CA and the client certificate. */
export function tlsOptions(files: EtcdTlsFiles): TlsOptions {
  return {
    ca: readFileSync(files.caFile),
    cert: readFileSync(files.clientCertFile),
    key: readFileSync(files.clientKeyFile),
  };
}

/** A client for `endpoint` with a 10-second deadline per call. */
export function etcdClientFor(
  endpoint: string | string[],
  tls?: TlsOptions,
  auth?: { username: string; password: string },
): EtcdTestClient {
  return etcdTestClient(
    new EtcdClient({
      endpoints: Array.isArray(endpoint) ? endpoint : [endpoint],
      timeoutMs: 10_000,
      tls,
      auth,
    }),
  );
}

/**
 * Turns etcd's authentication on, with a `root` user (role `root`) whose
 * password is `rootPassword`; returns a client authenticated as root.
 */
export async function enableEtcdAuth(
  server: EtcdServer,
  rootPassword: string,
  tls?: EtcdTlsFiles,
): Promise<EtcdTestClient> {
  const raw = server.client.raw;
  await raw.roleAdd("root");
  await raw.userAdd("root", rootPassword);
  await raw.userGrantRole("root", "root");
  await raw.authEnable();
  return etcdClientFor(server.endpoint, tls && tlsOptions(tls), {
    username: "root",
    password: rootPassword,
  });
}

/** PEM files for a server with client-certificate authentication (see `makeTlsFiles`). */
export interface EtcdTlsFiles {
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

/**
 * A CA, a server certificate for 127.0.0.1 and a client certificate, made
 * with `openssl` in `dir`.
 */
export function makeTlsFiles(dir: string): EtcdTlsFiles {
  const file = (name: string): string => path.join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync("openssl", args, { stdio: "ignore" });
  };
  openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=ogygia test CA",
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.pem"),
  );
  const signed = (name: string, subject: string, extensions: string): void => {
    openssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      subject,
      "-keyout",
      file(`${name}.key`),
      "-out",
      file(`${name}.csr`),
    );
    writeFileSync(file(`${name}.ext`), extensions);
    openssl(
      "x509",
      "-req",
      "-in",
      file(`${name}.csr`),
      "-CA",
      file("ca.pem"),
      "-CAkey",
      file("ca.key"),
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      file(`${name}.ext`),
      "-out",
      file(`${name}.pem`),
    );
  };
  signed(
    "server",
    "/CN=127.0.0.1",
    "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
  );
  signed("client", "/CN=root", "extendedKeyUsage=clientAuth\n");
  return {
    caFile: file("ca.pem"),
    serverCertFile: file("server.pem"),
    serverKeyFile: file("server.key"),
    clientCertFile: file("client.pem"),
    clientKeyFile: file("client.key"),
  };
}

export interface StartEtcdOptions {
  /** Serve https with these files and require client certificates. */
  tls?: EtcdTlsFiles | undefined;
}

export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdServer> {
  const dir = await tempDir("etcd");
  const port = await freePort();
  const peerPort = await freePort();
  const tls = options.tls;
  const endpoint = `${tls ? "https" : "http"}://127.0.0.1:${port}`;
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
      ...(tls
        ? [
            "--cert-file",
            tls.serverCertFile,
            "--key-file",
            tls.serverKeyFile,
            "--trusted-ca-file",
            tls.caFile,
            "--client-cert-auth",
          ]
        : []),
    ],
    dir,
    ready: () => canConnect(port),
    timeoutMs: 20_000,
  });
  const client = etcdClientFor(endpoint, tls && tlsOptions(tls));
  await waitFor("etcd to answer", async () => {
    await client.get("ogygia-test-probe");
    return true;
  });

  return {
    endpoint,
    port,
    dataDir: dir,
    client,
    ...control,
    async stop() {
      client.raw.close();
      await control.stop();
    },
  };
}
