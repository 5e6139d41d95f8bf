/**
 * A small declarative schema for TOML configuration: each key carries its
 * description and default beside its type, unknown keys are errors, and every
 * error names the file, the dotted key and (when it can be found) the line.
 *
 * Written by hand rather than with a validation library because the CLI's
 * start-up time is a feature: the libraries made for this cost ~100 ms to load
 * on our machines, more than the whole of `ogygia status` in local mode.
 */

import { OgygiaError } from "../core/index.js";

/** Where a value came from, for error messages. */
export interface SchemaContext {
  /** The file the value was read from. */
  file: string;
  /** Dotted key path → line number, from `locateKeys`. */
  lines: ReadonlyMap<string, number>;
}

export interface Field<T> {
  readonly description: string;
  /** Human-readable type for docs and errors, e.g. `array of strings`. */
  readonly typeName: string;
  /** Returns the value to use when the key is absent, or throws if required. */
  missing(path: readonly string[], ctx: SchemaContext): T;
  parse(value: unknown, path: readonly string[], ctx: SchemaContext): T;
}

export type FieldType<F> = F extends Field<infer T> ? T : never;
export type Shape = Record<string, Field<unknown>>;
export type ShapeType<S extends Shape> = { [K in keyof S]: FieldType<S[K]> };

/** The error for a value at `path`: `file:line: a.b.c: message`. */
export function invalidAt(
  path: readonly string[],
  ctx: SchemaContext,
  message: string,
): OgygiaError {
  const dotted = path.join(".");
  return new OgygiaError(
    "ERR_OGYGIA_CONFIG_INVALID",
    `${whereIs(path, ctx)}: ${dotted}: ${message}`,
    {
      hint: CONFIG_HINT,
    },
  );
}

const CONFIG_HINT = "Fix the configuration file and run the command again.";

/** `file:line` of the key at `path` (or of its nearest table), else `file`. */
export function whereIs(path: readonly string[], ctx: SchemaContext): string {
  const line = lineOf(path, ctx);
  return line === undefined ? ctx.file : `${ctx.file}:${line}`;
}

/**
 * Parses TOML text; a syntax error becomes `file:line:column: invalid TOML:
 * <reason>` (code `ERR_OGYGIA_CONFIG_PARSE`). The parser is loaded on first
 * use, so commands that read no configuration never pay for it.
 */
export async function parseTomlText(text: string, file: string): Promise<unknown> {
  const { parse, TomlError } = await import("smol-toml");
  try {
    return parse(text);
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const reason = err.message.split("\n")[0]?.replace(/^Invalid TOML document: /, "") ?? "";
    throw new OgygiaError(
      "ERR_OGYGIA_CONFIG_PARSE",
      `${file}:${err.line}:${err.column}: invalid TOML: ${reason}`,
      { hint: CONFIG_HINT, cause: err },
    );
  }
}

function lineOf(path: readonly string[], ctx: SchemaContext): number | undefined {
  // Array items (`endpoints[1]`) are located by their array's key.
  const keys = path.map((segment) => segment.replace(/\[\d+\]$/, ""));
  for (let n = keys.length; n > 0; n--) {
    const line = ctx.lines.get(keys.slice(0, n).join("."));
    if (line !== undefined) return line;
  }
  return undefined;
}

/** Describes a parsed TOML value for an error message. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date";
  switch (typeof value) {
    case "string":
      return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
    case "number":
      return Number.isInteger(value) ? `the integer ${value}` : `the float ${value}`;
    case "bigint":
      return `the integer ${value}`;
    case "boolean":
      return `the boolean ${value}`;
    case "object":
      return "a table";
    case "function":
    case "symbol":
    case "undefined":
      return typeof value;
  }
  return "a value";
}

interface BaseOptions<T> {
  description: string;
  /** Used when the key is absent. Without it the key is required. */
  default?: T;
}

function makeMissing<T>(opts: BaseOptions<T>): Field<T>["missing"] {
  return (path, ctx) => {
    if (opts.default !== undefined) return opts.default;
    throw invalidAt(path, ctx, "is required but missing");
  };
}

/** A string; `check` returns an error message for values it refuses. */
export function string(
  opts: BaseOptions<string> & { check?: (value: string) => string | undefined },
): Field<string> {
  return {
    description: opts.description,
    typeName: "string",
    missing: makeMissing(opts),
    parse(value, path, ctx) {
      if (typeof value !== "string") {
        throw invalidAt(path, ctx, `expected a string, got ${describeValue(value)}`);
      }
      const problem = opts.check?.(value);
      if (problem !== undefined) throw invalidAt(path, ctx, problem);
      return value;
    },
  };
}

/** A boolean. */
export function boolean(opts: BaseOptions<boolean>): Field<boolean> {
  return {
    description: opts.description,
    typeName: "boolean",
    missing: makeMissing(opts),
    parse(value, path, ctx) {
      if (typeof value !== "boolean") {
        throw invalidAt(path, ctx, `expected a boolean, got ${describeValue(value)}`);
      }
      return value;
    },
  };
}

/** An integer within `[min, max]`. */
export function integer(opts: BaseOptions<number> & { min?: number; max?: number }): Field<number> {
  const min = opts.min ?? Number.MIN_SAFE_INTEGER;
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  return {
    description: opts.description,
    typeName: `integer from ${min} to ${max}`,
    missing: makeMissing(opts),
    parse(value, path, ctx) {
      if (typeof value !== "number" || !Number.isInteger(value)) {
        throw invalidAt(path, ctx, `expected an integer, got ${describeValue(value)}`);
      }
      if (value < min || value > max) {
        throw invalidAt(path, ctx, `must be from ${min} to ${max}, got ${value}`);
      }
      return value;
    },
  };
}

/** A number (integer or float) within `[min, max]`. */
export function number(opts: BaseOptions<number> & { min?: number; max?: number }): Field<number> {
  const min = opts.min ?? -Infinity;
  const max = opts.max ?? Infinity;
  return {
    description: opts.description,
    typeName: `number from ${min} to ${max}`,
    missing: makeMissing(opts),
    parse(value, path, ctx) {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw invalidAt(path, ctx, `expected a number, got ${describeValue(value)}`);
      }
      if (value < min || value > max) {
        throw invalidAt(path, ctx, `must be from ${min} to ${max}, got ${value}`);
      }
      return value;
    },
  };
}

/** An array of strings; `check` returns an error message for an item it refuses. */
export function stringList(
  opts: BaseOptions<string[]> & {
    minItems?: number;
    check?: (value: string) => string | undefined;
  },
): Field<string[]> {
  return {
    description: opts.description,
    typeName: "array of strings",
    missing: makeMissing(opts),
    parse(value, path, ctx) {
      if (!Array.isArray(value)) {
        throw invalidAt(path, ctx, `expected an array of strings, got ${describeValue(value)}`);
      }
      if (opts.minItems !== undefined && value.length < opts.minItems) {
        throw invalidAt(
          path,
          ctx,
          value.length === 0
            ? "must not be empty"
            : `needs at least ${opts.minItems} items, got ${value.length}`,
        );
      }
      return value.map((item: unknown, index) => {
        const itemPath = [...path.slice(0, -1), `${path.at(-1) ?? ""}[${index}]`];
        if (typeof item !== "string") {
          throw invalidAt(itemPath, ctx, `expected a string, got ${describeValue(item)}`);
        }
        const problem = opts.check?.(item);
        if (problem !== undefined) throw invalidAt(itemPath, ctx, problem);
        return item;
      });
    },
  };
}

/** Makes a field optional: absent means `undefined`. */
export function optional<T>(field: Field<T>): Field<T | undefined> {
  return {
    description: field.description,
    typeName: field.typeName,
    missing: () => undefined,
    parse: (value, path, ctx) => field.parse(value, path, ctx),
  };
}

/** A table with known keys; any other key is an error. */
export function table<S extends Shape>(opts: {
  description: string;
  fields: S;
}): Field<ShapeType<S>> {
  const parse = (value: unknown, path: readonly string[], ctx: SchemaContext): ShapeType<S> => {
    if (
      typeof value !== "object" ||
      value === null ||
      Array.isArray(value) ||
      value instanceof Date
    ) {
      throw invalidAt(path, ctx, `expected a table, got ${describeValue(value)}`);
    }
    const input = value as Record<string, unknown>;
    for (const key of Object.keys(input)) {
      if (!Object.hasOwn(opts.fields, key)) {
        const known = Object.keys(opts.fields).join(", ");
        throw invalidAt([...path, key], ctx, `unknown key (known keys here: ${known})`);
      }
    }
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(opts.fields)) {
      const keyPath = [...path, key];
      out[key] = Object.hasOwn(input, key)
        ? field.parse(input[key], keyPath, ctx)
        : field.missing(keyPath, ctx);
    }
    return out as ShapeType<S>;
  };
  return {
    description: opts.description,
    typeName: "table",
    // An absent table is an empty one: its fields' defaults apply.
    missing: (path, ctx) => parse({}, path, ctx),
    parse,
  };
}

/**
 * Best-effort map from dotted key to the 1-based line that defines it, so
 * schema errors can point at a line. Handles `[table]` headers, `key =` and
 * dotted `a.b =` keys; anything it cannot follow is simply not located.
 */
export function locateKeys(text: string): Map<string, number> {
  const lines = new Map<string, number>();
  let table: string[] = [];
  const bare = /^[A-Za-z0-9_-]+$/;
  const splitKey = (key: string): string[] | undefined => {
    const parts = key.split(".").map((p) => p.trim());
    return parts.every((p) => bare.test(p)) ? parts : undefined;
  };
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    const header = /^\[([^[\]]+)\]\s*(#.*)?$/.exec(line);
    if (header?.[1] !== undefined) {
      table = splitKey(header[1]) ?? [];
      if (table.length > 0 && !lines.has(table.join("."))) lines.set(table.join("."), index + 1);
      return;
    }
    const assignment = /^([A-Za-z0-9_.\s-]+?)\s*=/.exec(line);
    if (assignment?.[1] !== undefined) {
      const key = splitKey(assignment[1]);
      if (key) lines.set([...table, ...key].join("."), index + 1);
    }
  });
  return lines;
}
