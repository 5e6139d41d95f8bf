/**
 * Writing to the terminal. stdout and stderr are synchronous for files,
 * pipes and terminals on Linux, so a line written is a line delivered.
 */

/** Writes a line to stdout or stderr. */
export function writeLine(stream: "stdout" | "stderr", text: string): void {
  (stream === "stdout" ? process.stdout : process.stderr).write(`${text}\n`);
}
