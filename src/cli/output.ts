/**
 * Writing to the terminal. Lines go to file descriptors 1 and 2 with
 * `fs.writeSync`: a line written is a line delivered, and `process.stdout`
 * is never created on the common path (for a pipe it is a `net.Socket`,
 * whose creation costs more than all of `ogygia status`'s own work). Only
 * when a write would block (a non-blocking pipe that is full) does the rest
 * go through the stream, which `flushOutput` waits for before the CLI exits.
 */

import { writeSync } from "node:fs";

import { hasErrorCode } from "../core/index.js";

export type StreamName = "stdout" | "stderr";

const FDS: Record<StreamName, number> = { stdout: 1, stderr: 2 };

/** The streams handed out so far: from then on, their writes go through them, in order. */
const streams = new Map<StreamName, NodeJS.WriteStream>();

/**
 * `process.stdout` or `process.stderr`, for writes that need a stream
 * (a callback once written, `isTTY`). A closed stdout pipe (`ogygia status |
 * head -1`) is not an error worth a stack trace: the CLI exits 0.
 */
export function outputStream(name: StreamName): NodeJS.WriteStream {
  let stream = streams.get(name);
  if (stream) return stream;
  stream = name === "stdout" ? process.stdout : process.stderr;
  if (name === "stdout") {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") process.exit(0);
      throw err;
    });
  }
  streams.set(name, stream);
  return stream;
}

function write(name: StreamName, text: string): void {
  const stream = streams.get(name);
  if (stream) {
    stream.write(text);
    return;
  }
  const bytes = Buffer.from(text);
  let offset = 0;
  try {
    while (offset < bytes.length) offset += writeSync(FDS[name], bytes, offset);
    return;
  } catch (err) {
    if (name === "stdout" && hasErrorCode(err, "EPIPE")) process.exit(0);
    if (!hasErrorCode(err, "EAGAIN")) throw err;
  }
  outputStream(name).write(bytes.subarray(offset));
}

/** Writes a line to stdout or stderr. */
export function writeLine(stream: StreamName, text: string): void {
  write(stream, `${text}\n`);
}

/**
 * Writes lines in order, joining consecutive lines for the same stream into
 * one write (a 10,000-host table is one system call, not 10,000).
 */
export function writeLines(lines: readonly { stream: StreamName; text: string }[]): void {
  let i = 0;
  while (i < lines.length) {
    const stream = lines[i]?.stream ?? "stdout";
    let text = "";
    while (i < lines.length && lines[i]?.stream === stream) {
      text += `${lines[i]?.text ?? ""}\n`;
      i += 1;
    }
    write(stream, text);
  }
}

/** Resolves once everything written through the streams so far has been handed to the OS. */
export async function flushOutput(): Promise<void> {
  await Promise.all(
    [...streams.values()].map(
      (stream) =>
        new Promise<void>((resolve) => {
          if (stream.writableLength === 0) resolve();
          else
            stream.write("", () => {
              resolve();
            });
        }),
    ),
  );
}
