/**
 * Writing to the terminal. stdout and stderr are synchronous for files,
 * pipes and terminals on Linux, so a line written is a line delivered.
 */

/** Writes a line to stdout or stderr. */
export function writeLine(stream: "stdout" | "stderr", text: string): void {
  (stream === "stdout" ? process.stdout : process.stderr).write(`${text}\n`);
}

/**
 * Writes lines in order, joining consecutive lines for the same stream into
 * one write (a 10,000-host table is one system call, not 10,000).
 */
export function writeLines(lines: readonly { stream: "stdout" | "stderr"; text: string }[]): void {
  let i = 0;
  while (i < lines.length) {
    const stream = lines[i]?.stream ?? "stdout";
    let text = "";
    while (i < lines.length && lines[i]?.stream === stream) {
      text += `${lines[i]?.text ?? ""}\n`;
      i += 1;
    }
    (stream === "stdout" ? process.stdout : process.stderr).write(text);
  }
}
