import { readFileSync } from "node:fs";

/**
 * Our version, from the nearest `package.json` named `ogygia` above the
 * calling module (bundled or compiled, so the depth differs): pass
 * `import.meta.url`. "unknown" when none is found.
 */
export function packageVersion(from: string): string {
  for (let dir = new URL(".", from); ; dir = new URL("..", dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("package.json", dir), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === "ogygia" && pkg.version) return pkg.version;
    } catch {
      // No package.json here (or an unreadable one): keep walking up.
    }
    if (dir.pathname === "/") return "unknown";
  }
}
