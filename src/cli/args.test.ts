import { describe, expect, it } from "vitest";

import { OgygiaError } from "../core/index.js";
import {
  commandGroups,
  groupHelp,
  parseCommandArgs,
  unknownCommandError,
  type CommandSpec,
} from "./args.js";

function command(path: string[], extra: Partial<CommandSpec> = {}): CommandSpec {
  return {
    path,
    summary: `the ${path.join(" ")} command`,
    description: "",
    options: {
      json: { type: "boolean", description: "JSON" },
      watch: { type: "boolean", short: "w", description: "watch" },
      root: { type: "string", description: "root" },
    },
    run: () => Promise.resolve(0),
    ...extra,
  };
}

const STATUS = command(["status"]);
const COMMANDS = [
  STATUS,
  command(["publish"]),
  command(["iris", "push"]),
  command(["iris", "providers"]),
];

function thrown(fn: () => unknown): OgygiaError {
  try {
    fn();
  } catch (err) {
    if (err instanceof OgygiaError) return err;
    throw err;
  }
  throw new Error("expected an OgygiaError");
}

describe("parseCommandArgs' usage errors", () => {
  const cases: { argv: string[]; message: string; hint: string }[] = [
    {
      argv: ["--jsn"],
      message: "unknown option '--jsn'",
      hint: "did you mean '--json'? Run 'ogygia status --help' for usage.",
    },
    { argv: ["-x"], message: "unknown option '-x'", hint: "Run 'ogygia status --help' for usage." },
    {
      argv: ["--root"],
      message: "option '--root' needs a value",
      hint: "Run 'ogygia status --help' for usage.",
    },
    {
      argv: ["--root", "--json"],
      message:
        "option '--root' needs a value (for one that starts with '-', write '--root=--json')",
      hint: "Run 'ogygia status --help' for usage.",
    },
    {
      argv: ["--json=yes"],
      message: "option '--json' takes no value",
      hint: "Run 'ogygia status --help' for usage.",
    },
    {
      argv: ["extra"],
      message: "unexpected argument 'extra'",
      hint: "Run 'ogygia status --help' for usage.",
    },
  ];
  for (const { argv, message, hint } of cases) {
    it(`says "${message}" for ${argv.join(" ")}, exit 2`, () => {
      const err = thrown(() => parseCommandArgs(STATUS, argv));
      expect(err.code).toBe("ERR_OGYGIA_USAGE");
      expect(err.message).toBe(message);
      expect(err.hint).toBe(hint);
      expect(err.exitCode).toBe(2);
    });
  }

  it("refuses a positional outside its choices, suggesting the closest", () => {
    const completion = command(["completion"], {
      options: {},
      positionals: [{ name: "shell", description: "", choices: ["bash", "zsh", "fish"] }],
    });
    const err = thrown(() => parseCommandArgs(completion, ["bsh"]));
    expect(err.message).toBe("unknown shell 'bsh' (use bash, zsh, fish)");
    expect(err.hint).toBe("did you mean 'bash'? Run 'ogygia completion --help' for usage.");
    expect(parseCommandArgs(completion, ["zsh"]).positionals).toEqual(["zsh"]);
  });
});

describe("unknownCommandError", () => {
  it("names the mistyped word and suggests the closest command", () => {
    const err = unknownCommandError(COMMANDS, ["stauts", "--json"]);
    expect(err.message).toBe("unknown command 'stauts'");
    expect(err.hint).toBe("did you mean 'status'? Run 'ogygia --help' for usage.");
  });

  it("suggests within a group and points to the group's help", () => {
    const err = unknownCommandError(COMMANDS, ["iris", "pus", "./result"]);
    expect(err.message).toBe("unknown command 'iris pus'");
    expect(err.hint).toBe("did you mean 'iris push'? Run 'ogygia iris --help' for usage.");
  });

  it("calls a leading option an option, suggesting the closest", () => {
    const top = unknownCommandError(COMMANDS, ["--verison"]);
    expect(top.message).toBe("unknown option '--verison'");
    expect(top.hint).toBe("did you mean '--version'? Run 'ogygia --help' for usage.");
    const group = unknownCommandError(COMMANDS, ["iris", "-x"]);
    expect(group.message).toBe("unknown option '-x'");
    expect(group.hint).toBe("Run 'ogygia iris --help' for usage.");
  });

  it("only points to help when nothing is close", () => {
    const err = unknownCommandError(COMMANDS, ["deploy"]);
    expect(err.message).toBe("unknown command 'deploy'");
    expect(err.hint).toBe("Run 'ogygia --help' for usage.");
  });
});

describe("groupHelp", () => {
  it("lists the group's commands with their summaries", () => {
    const groups = commandGroups(COMMANDS);
    expect([...groups.keys()]).toEqual(["iris"]);
    expect(groupHelp("iris", groups.get("iris") ?? [], "The iris group.")).toBe(
      [
        "Usage: ogygia iris <command> [options]",
        "",
        "The iris group.",
        "",
        "Commands:",
        "  iris push       the iris push command",
        "  iris providers  the iris providers command",
        "",
        "Options:",
        "  -h, --help  show help (also: ogygia iris <command> --help)",
        "",
      ].join("\n"),
    );
  });
});
