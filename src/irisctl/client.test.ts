import { describe, expect, it } from "vitest";

import { OgygiaError } from "../core/index.js";
import { irisdBaseUrl, parseProvidersAnswer, parseRescanAnswer } from "./client.js";

const HASH = "0c2g1lqlkpn6gyxxk6cyqk0m1yhirw5a";
const PATH = `/nix/store/${HASH}-hello-2.12`;

describe("irisdBaseUrl", () => {
  it("prefers the flag, then the environment, then the default", () => {
    expect(irisdBaseUrl("http://10.0.0.1:35742", { OGYGIA_IRISD_URL: "http://x:1" }).href).toBe(
      "http://10.0.0.1:35742/",
    );
    expect(irisdBaseUrl(undefined, { OGYGIA_IRISD_URL: "http://x:1/base" }).href).toBe(
      "http://x:1/base/",
    );
    expect(irisdBaseUrl(undefined, {}).href).toBe("http://127.0.0.1:35742/");
  });

  it("refuses what is not an http base URL, without echoing credentials", () => {
    expect(() => irisdBaseUrl("localhost:35742", {})).toThrow(/must be an http/);
    expect(() => irisdBaseUrl("not a url", {})).toThrow(/is not a URL/);
    expect(() => irisdBaseUrl("ftp://u:secret@h/", {})).toThrow(/"ftp:\/\/\*\*\*@h\/"/);
  });
});

describe("parseProvidersAnswer", () => {
  const good = {
    hash: HASH,
    local: false,
    providers: [
      {
        url: "http://10.0.0.2:35742",
        storePath: PATH,
        narHash: "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
        narSize: 1234,
        signatures: ["cache-1"],
      },
    ],
  };

  it("accepts a well-formed answer", () => {
    expect(parseProvidersAnswer(good, HASH)).toEqual(good);
  });

  it("refuses answers about another path or of the wrong shape", () => {
    const cases: unknown[] = [
      null,
      [],
      { ...good, hash: "x" },
      { ...good, local: "no" },
      { ...good, providers: {} },
      { ...good, providers: [{ ...good.providers[0], storePath: "/etc/passwd" }] },
      {
        ...good,
        providers: [{ ...good.providers[0], storePath: `/nix/store/${"a".repeat(32)}-other` }],
      },
      { ...good, providers: [{ ...good.providers[0], narSize: -1 }] },
      { ...good, providers: [{ ...good.providers[0], signatures: [1] }] },
    ];
    for (const body of cases) {
      expect(() => parseProvidersAnswer(body, HASH)).toThrow(OgygiaError);
    }
  });
});

describe("parseRescanAnswer", () => {
  it("accepts counts and path lists, defaulting absent lists to empty", () => {
    expect(parseRescanAnswer({ indexed: 10, added: 2, notServeable: [PATH] })).toEqual({
      indexed: 10,
      added: 2,
      notServeable: [PATH],
      missing: [],
    });
  });

  it("refuses malformed counts and lists", () => {
    expect(() => parseRescanAnswer({ indexed: "10", added: 0 })).toThrow(
      /`indexed` is not a count/,
    );
    expect(() => parseRescanAnswer({ indexed: 1, added: 0, missing: ["/tmp/x"] })).toThrow(
      /`missing` is not a list of store paths/,
    );
  });
});
