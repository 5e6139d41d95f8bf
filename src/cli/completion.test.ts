import { describe, expect, it } from "vitest";

import { COMMANDS } from "./commands.js";
import { SHELLS, completionScript } from "./completion.js";

describe("completionScript", () => {
  for (const shell of SHELLS) {
    it(`offers every command word and option of the table in ${shell}`, () => {
      const script = completionScript(shell, COMMANDS);
      for (const command of COMMANDS) {
        for (const word of command.path) expect(script).toContain(word);
        for (const option of Object.keys(command.options)) {
          expect(script).toMatch(new RegExp(`(--| -l )${option}\\b`));
        }
      }
    });
  }

  it("completes --root to directories and --config to files in bash", () => {
    const script = completionScript("bash", COMMANDS);
    expect(script).toContain('--root) _ogygia_directories "$cur"; return 0 ;;');
    expect(script).toContain('--config) _ogygia_files "$cur"; return 0 ;;');
    expect(script).toMatch(/^complete -F _ogygia ogygia$/m);
  });

  it("refuses a command word it could not embed safely", () => {
    const bad = { ...COMMANDS[0], path: ["st'atus"] } as (typeof COMMANDS)[number];
    expect(() => completionScript("bash", [bad])).toThrow(/bad command word/);
  });
});
