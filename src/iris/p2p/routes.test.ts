import { describe, expect, it } from "vitest";

import { HttpError } from "../http/index.js";
import { ifNoneMatch, isLoopbackAddress, parseRescanBody } from "./routes.js";

const STORE = "/nix/store";
const PATH = `${STORE}/0c1a8fsj5n1wnwvdpqvzc3fb2zgx1bbl-hello-2.12`;

describe("POST /rescan: who may ask", () => {
  it("allows 127.0.0.0/8, ::1 and IPv4-mapped loopback", () => {
    for (const address of [
      "127.0.0.1",
      "127.1.2.3",
      "::1",
      "::ffff:127.0.0.1",
      "0:0:0:0:0:0:0:1",
    ]) {
      expect(isLoopbackAddress(address), address).toBe(true);
    }
  });

  it("refuses every other address", () => {
    for (const address of [
      undefined,
      "",
      "10.0.0.1",
      "128.0.0.1",
      "::ffff:10.0.0.1",
      "::2",
      "fe80::1",
      "1127.0.0.1",
      "127.0.0.1.example",
    ]) {
      expect(isLoopbackAddress(address), String(address)).toBe(false);
    }
  });
});

describe("POST /rescan: the body", () => {
  const parse = (text: string): string[] => parseRescanBody(Buffer.from(text), STORE);

  it("names store paths, or none (the whole store)", () => {
    expect(parse("")).toEqual([]);
    expect(parse(" \n")).toEqual([]);
    expect(parse("{}")).toEqual([]);
    expect(parse('{"paths": []}')).toEqual([]);
    expect(parse(JSON.stringify({ paths: [PATH] }))).toEqual([PATH]);
  });

  it("refuses anything else with a 400 that says what is wrong", () => {
    const cases: [string, RegExp][] = [
      ["{", /not JSON/],
      ["null", /JSON object/],
      ['"x"', /JSON object/],
      ["[]", /JSON object/],
      ['{"paths": {}}', /array/],
      ['{"paths": [null]}', /paths\[0\] is not a string/],
      [`{"paths": ["${PATH}", "/tmp/x"]}`, /paths\[1\]: invalid store path '\/tmp\/x'/],
      [`{"paths": ["${PATH}/bin/hello"]}`, /paths\[0\]:.*inside a store path/],
      ['{"paths": [], "sign": true}', /unknown field "sign"/],
    ];
    for (const [text, message] of cases) {
      let error: unknown;
      try {
        parse(text);
      } catch (err) {
        error = err;
      }
      expect(error, text).toBeInstanceOf(HttpError);
      expect((error as HttpError).status).toBe(400);
      expect((error as HttpError).message).toMatch(message);
    }
  });
});

describe("GET /bloom: If-None-Match", () => {
  it("matches the tag, a list holding it, a weak form of it, or *", () => {
    const etag = '"abc"';
    expect(ifNoneMatch('"abc"', etag)).toBe(true);
    expect(ifNoneMatch('"x", "abc"', etag)).toBe(true);
    expect(ifNoneMatch('W/"abc"', etag)).toBe(true);
    expect(ifNoneMatch("*", etag)).toBe(true);
    expect(ifNoneMatch(['"x"', '"abc"'], etag)).toBe(true);
    expect(ifNoneMatch(undefined, etag)).toBe(false);
    expect(ifNoneMatch('"abcd"', etag)).toBe(false);
    expect(ifNoneMatch("abc", etag)).toBe(false);
  });
});
