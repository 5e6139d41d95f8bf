/**
 * The first-pass floor of a Node process that dumps NARs from a store: a
 * bare node:http server answering `/nar/<hash part>...` with the NAR of the
 * store path, dumped by the simplest correct walk (recursive `lstatSync`,
 * `readdirSync`, `readFileSync` into a list of buffers; files over 1 MiB
 * read into pooled 1 MiB buffers and written with backpressure). No
 * database, no checks, no hashing, no cache: what is left is what any Node
 * process pays to turn a store path into a NAR on a socket.
 *
 *   node dist/bench/nar-dump-floor.js <physical store folder>
 *
 * Prints its port on stdout. `/<hash part>.narinfo` gets a fixed 708-byte
 * body (as the node:http floor's), so the narinfo passes a client makes
 * before the NARs warm the same HTTP path as in irisd. Names are assumed to sort bytewise as
 * JavaScript strings (true of ASCII names, as every store path and the
 * benchmark closure's files are); the benchmark checks its NARs against
 * nginx's.
 */

import {
  closeSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  readlinkSync,
} from "node:fs";
import http from "node:http";

const LARGE = 1024 * 1024;

/** A NAR string: u64 length, the bytes, zeros to a multiple of 8. */
function token(value: string | Buffer): Buffer {
  const bytes = typeof value === "string" ? Buffer.from(value) : value;
  const out = Buffer.alloc(8 + Math.ceil(bytes.length / 8) * 8);
  out.writeUInt32LE(bytes.length, 0);
  bytes.copy(out, 8);
  return out;
}

function tokens(...values: string[]): Buffer {
  return Buffer.concat(values.map(token));
}

const MAGIC = token("nix-archive-1");
const REGULAR = tokens("(", "type", "regular", "contents");
const EXECUTABLE = tokens("(", "type", "regular", "executable", "", "contents");
const DIRECTORY = tokens("(", "type", "directory");
const SYMLINK = tokens("(", "type", "symlink", "target");
const ENTRY = tokens("entry", "(", "name");
const NODE = token("node");
const CLOSE = token(")");
const ZEROS = Buffer.alloc(8);

/** A file too large to hold whole: streamed at send time. */
interface LargeFile {
  path: string;
  size: number;
}

type Part = Buffer | LargeFile;

function dump(path: string, parts: Part[]): void {
  const stats = lstatSync(path);
  if (stats.isSymbolicLink()) {
    parts.push(SYMLINK, token(readlinkSync(path, { encoding: "buffer" })), CLOSE);
  } else if (stats.isDirectory()) {
    parts.push(DIRECTORY);
    for (const name of readdirSync(path).sort()) {
      parts.push(ENTRY, token(name), NODE);
      dump(`${path}/${name}`, parts);
      parts.push(CLOSE);
    }
    parts.push(CLOSE);
  } else {
    const size = stats.size;
    const head = Buffer.alloc(8);
    head.writeUInt32LE(size % 0x100000000, 0);
    head.writeUInt32LE(Math.floor(size / 0x100000000), 4);
    parts.push((stats.mode & 0o100) !== 0 ? EXECUTABLE : REGULAR, head);
    if (size > LARGE) parts.push({ path, size });
    else if (size > 0) parts.push(readFileSync(path));
    if (size % 8 !== 0) parts.push(ZEROS.subarray(0, 8 - (size % 8)));
    parts.push(CLOSE);
  }
}

const pool: Buffer[] = [];

/** Writes `parts` from `index` on; small buffers in runs as one write, large files in 1 MiB reads. */
function send(res: http.ServerResponse, parts: Part[], index: number): void {
  let run: Buffer[] = [];
  for (let i = index; i < parts.length; i++) {
    const part = parts[i];
    if (part === undefined) break;
    if (Buffer.isBuffer(part)) {
      run.push(part);
      continue;
    }
    if (run.length > 0) res.write(Buffer.concat(run));
    run = [];
    const fd = openSync(part.path, "r");
    let pos = 0;
    const pump = (): void => {
      while (pos < part.size) {
        const buf = pool.pop() ?? Buffer.allocUnsafeSlow(LARGE);
        const n = readSync(fd, buf, 0, Math.min(LARGE, part.size - pos), pos);
        pos += n;
        const more = res.write(n === LARGE ? buf : buf.subarray(0, n), () => pool.push(buf));
        if (!more) {
          res.once("drain", pump);
          return;
        }
      }
      closeSync(fd);
      send(res, parts, i + 1);
    };
    pump();
    return;
  }
  res.end(run.length > 0 ? Buffer.concat(run) : undefined);
}

const storeDir = process.argv[2] ?? "/nix/store";
const byHashPart = new Map<string, string>();
for (const name of readdirSync(storeDir)) {
  if (name[32] === "-") byHashPart.set(name.slice(0, 32), `${storeDir}/${name}`);
}

// A narinfo stand-in, so a client's narinfo requests before the NARs run the same HTTP path.
const NARINFO = Buffer.alloc(708, "x");

const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
  const url = req.url ?? "";
  if (url.endsWith(".narinfo") && byHashPart.has(url.slice(1, 33))) {
    res.writeHead(200, ["Content-Type", "text/x-nix-narinfo", "Content-Length", "708"]);
    res.end(NARINFO);
    return;
  }
  const path = url.startsWith("/nar/") ? byHashPart.get(url.slice(5, 37)) : undefined;
  if (path === undefined) {
    res.writeHead(404, ["Content-Length", "0"]);
    res.end();
    return;
  }
  const parts: Part[] = [MAGIC];
  dump(path, parts);
  let length = 0;
  for (const part of parts) length += Buffer.isBuffer(part) ? part.length : part.size;
  res.writeHead(200, ["Content-Type", "application/x-nix-nar", "Content-Length", String(length)]);
  send(res, parts, 0);
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  console.log(typeof address === "object" && address !== null ? address.port : "");
});
process.on("SIGTERM", () => {
  server.closeAllConnections();
  server.close();
});
