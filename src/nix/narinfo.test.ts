import { describe, expect, it } from "vitest";

import { OgygiaError } from "../core/index.js";
import { formatHash, parseHash } from "./hash.js";
import { narInfoFromPathInfo, narUrlFor, parseNarInfo, renderNarInfo } from "./narinfo.js";
import { prng, randomInt } from "../../test/support/nix.js";

// Written by Nix 2.8 (`nix copy --to file://...`).
const XZ = `StorePath: /nix/store/6c3c4dx6b7wndjn5h3qs3h4bpkaxhp3g-top
URL: nar/04n85kk3nrimsjb8nykzr2fl1qp0kgiwr07cjh2n745bkl44cdch.nar.xz
Compression: xz
FileHash: sha256:04n85kk3nrimsjb8nykzr2fl1qp0kgiwr07cjh2n745bkl44cdch
FileSize: 208
NarHash: sha256:1zii101pd2xw4ynzbmnpgwf2kprvpy0cmcwb46ck9mg9881f6dlz
NarSize: 328
References: rjbgwy78gaxjs1zsypaj1g9x31c0sm1r-mid
Deriver: lcgi91lf0kd4ba2qr2kwcgmbyvpkqn4j-top.drv
Sig: test-1:gjz73637noU0mgTx5Yn/yfNeODYtoZsK8tu7ZmxpFgrpOXA2UujrCZAR0b1kzVio0hR39Km5lWULF+4oAdWVCg==
`;
const CA = `StorePath: /nix/store/n1gqkrv0njv9y5b718d25lb2qw53f9as-catree
URL: nar/0l3163ffabgwv6vm3hzpgp74dfgqa9gl6qp16mjw1xq796m8zxnk.nar
Compression: none
FileHash: sha256:0l3163ffabgwv6vm3hzpgp74dfgqa9gl6qp16mjw1xq796m8zxnk
FileSize: 456
NarHash: sha256:0l3163ffabgwv6vm3hzpgp74dfgqa9gl6qp16mjw1xq796m8zxnk
NarSize: 456
References: 
Sig: test-1:0B3PRbELqagZAz+bTIK+iDBA9ma6hazpI1Xl6e/P+0hrhEgae1cTbH1jtsKattQV1LngjBoHpCnGEJ52DN3CDw==
Sig: zeta-2:KrkaJDOFSkablb3klYnAAP4ss2HxsgFhzPTlR/08jLqK2kkHnvVRHqBNfu7rCAIpWzhsdXa7ongxytllU73sDw==
CA: fixed:r:sha256:0l3163ffabgwv6vm3hzpgp74dfgqa9gl6qp16mjw1xq796m8zxnk
`;
const MID = `StorePath: /nix/store/rjbgwy78gaxjs1zsypaj1g9x31c0sm1r-mid
URL: nar/10irq9fwgps4v5dchzxczzkvc1crhfv4nah5c5zjdmk7hzjc89g2.nar
Compression: none
FileHash: sha256:10irq9fwgps4v5dchzxczzkvc1crhfv4nah5c5zjdmk7hzjc89g2
FileSize: 776
NarHash: sha256:10irq9fwgps4v5dchzxczzkvc1crhfv4nah5c5zjdmk7hzjc89g2
NarSize: 776
References: f70mfb2h1q5ci1ngz247qhprd24565hn-leaf
Deriver: a71vpf6mzsqr1dh0z5p51a0vszj7q004-mid.drv
Sig: test-1:fxXbRopseJ30XFkb+73cKh9Wg5tdfHiiMZwIJJR9mDVMIOAwv/WCYDNH5Yz9I66plddGPN7KIg7SlhjfiVdyAA==
`;

describe("narinfo", () => {
  it("parses every field and renders Nix's bytes back", () => {
    for (const text of [XZ, CA, MID]) expect(renderNarInfo(parseNarInfo(text))).toBe(text);
    const info = parseNarInfo(XZ);
    expect(info.storePath).toBe("/nix/store/6c3c4dx6b7wndjn5h3qs3h4bpkaxhp3g-top");
    expect(info.references).toEqual(["/nix/store/rjbgwy78gaxjs1zsypaj1g9x31c0sm1r-mid"]);
    expect(info.deriver).toBe("/nix/store/lcgi91lf0kd4ba2qr2kwcgmbyvpkqn4j-top.drv");
    expect(info.narSize).toBe(328);
    expect(info.fileSize).toBe(208);
    expect(info.compression).toBe("xz");
    expect(parseNarInfo(CA).ca).toBe(
      "fixed:r:sha256:0l3163ffabgwv6vm3hzpgp74dfgqa9gl6qp16mjw1xq796m8zxnk",
    );
    expect(parseNarInfo(CA).sigs).toHaveLength(2);
  });

  it("renders in Nix's order with sorted references and signatures, whatever the input order", () => {
    const info = parseNarInfo(CA);
    const shuffled = {
      ...info,
      sigs: [...info.sigs].reverse(),
      references: [
        "/nix/store/rjbgwy78gaxjs1zsypaj1g9x31c0sm1r-mid",
        "/nix/store/f70mfb2h1q5ci1ngz247qhprd24565hn-leaf",
      ],
      system: "x86_64-linux",
      deriver: "/nix/store/lcgi91lf0kd4ba2qr2kwcgmbyvpkqn4j-top.drv",
    };
    const lines = renderNarInfo(shuffled).split("\n");
    expect(lines.map((l) => l.split(":")[0])).toEqual([
      "StorePath",
      "URL",
      "Compression",
      "FileHash",
      "FileSize",
      "NarHash",
      "NarSize",
      "References",
      "Deriver",
      "System",
      "Sig",
      "Sig",
      "CA",
      "",
    ]);
    expect(lines[7]).toBe(
      "References: f70mfb2h1q5ci1ngz247qhprd24565hn-leaf rjbgwy78gaxjs1zsypaj1g9x31c0sm1r-mid",
    );
    expect(lines[10]?.startsWith("Sig: test-1:")).toBe(true);
  });

  it("builds the narinfo Nix writes for an uncompressed NAR from path info", () => {
    const info = parseNarInfo(MID);
    const built = narInfoFromPathInfo({
      storePath: info.storePath,
      narHash: info.narHash,
      narSize: info.narSize,
      references: info.references,
      deriver: info.deriver,
      sigs: info.sigs,
    });
    expect(renderNarInfo(built)).toBe(MID);
    expect(narUrlFor(info.narHash, "xz")).toBe(
      "nar/10irq9fwgps4v5dchzxczzkvc1crhfv4nah5c5zjdmk7hzjc89g2.nar.xz",
    );
  });

  it("reads an empty CA as none and renders any CA spelling as Nix does (nix32)", () => {
    expect(parseNarInfo(`${MID}CA: \n`).ca).toBeUndefined();
    const hex = CA.replace(
      "CA: fixed:r:sha256:0l3163ffabgwv6vm3hzpgp74dfgqa9gl6qp16mjw1xq796m8zxnk",
      "CA: fixed:r:sha256:d3f68faa4907f7c06535e162435f52f8b946ce7df7c351b7d9fc2de5dc306150",
    );
    expect(renderNarInfo(parseNarInfo(hex))).toBe(CA);
    const info = parseNarInfo(CA);
    expect(() => renderNarInfo({ ...info, ca: "fixed:nonsense" })).toThrow(/invalid CA/);
  });

  it("always renders Compression and defaults a missing one to bzip2 when parsing", () => {
    const without = XZ.replace("Compression: xz\n", "");
    expect(parseNarInfo(without).compression).toBe("bzip2");
    expect(renderNarInfo(parseNarInfo(without))).toContain("Compression: bzip2\n");
  });

  it("accepts hashes in any Nix spelling and ignores unknown fields, as Nix does", () => {
    const hex = formatHash(
      parseHash("sha256:1zii101pd2xw4ynzbmnpgwf2kprvpy0cmcwb46ck9mg9881f6dlz"),
      "base16",
    );
    const text = XZ.replace(/^NarHash: .*$/m, `NarHash: ${hex}`) + "Future: field\n";
    expect(renderNarInfo(parseNarInfo(text))).toBe(XZ);
    const unknown = XZ.replace(/^Deriver: .*$/m, "Deriver: unknown-deriver");
    expect(parseNarInfo(unknown).deriver).toBeUndefined();
  });

  const bad: [string, string, RegExp][] = [
    ["no colon", XZ.replace("URL: ", "URL "), /line 2: expected 'Name: value'/],
    ["a bad store path", XZ.replace("-top", "-t op"), /line 1: invalid StorePath/],
    [
      "a bad NarHash",
      XZ.replace("NarHash: sha256:1", "NarHash: sha256:e"),
      /line 6: invalid NarHash/,
    ],
    [
      "a non-SHA-256 NarHash",
      XZ.replace(/^NarHash: .*$/m, "NarHash: sha1:143xibwh31h9bvxzalr0sjvbbvpa6ffs"),
      /line 6: .*expected a sha256/,
    ],
    ["a negative NarSize", XZ.replace("NarSize: 328", "NarSize: -1"), /line 7: invalid NarSize/],
    ["a zero NarSize", XZ.replace("NarSize: 328", "NarSize: 0"), /line 7: NarSize is zero/],
    [
      "a huge FileSize",
      XZ.replace("FileSize: 208", "FileSize: 99999999999999999999"),
      /line 5: invalid FileSize/,
    ],
    [
      "a bad reference",
      XZ.replace("References: r", "References: /nix/store/r"),
      /line 8: invalid References/,
    ],
    ["a bad deriver", XZ.replace("Deriver: l", "Deriver: !"), /line 9: invalid Deriver/],
    ["a bad CA", CA.replace("CA: fixed:", "CA: fixd:"), /line 11: invalid CA/],
    ["a bad Sig", XZ.replace("Sig: test-1:", "Sig: test-1 "), /line 10: invalid Sig/],
    ["a repeated field", XZ + "NarSize: 328\n", /line 11: NarSize appears twice/],
    ["a missing StorePath", XZ.replace(/^StorePath: .*\n/m, ""), /StorePath missing/],
    ["a missing URL", XZ.replace(/^URL: .*\n/m, ""), /URL missing/],
    ["a missing NarHash", XZ.replace(/^NarHash: .*\n/m, ""), /NarHash missing/],
    ["no final newline", XZ.trimEnd(), /line 10: the last line does not end/],
    ["a blank line", XZ + "\n", /line 11: expected 'Name: value'/],
    ["CRLF line ends", XZ.replaceAll("\n", "\r\n"), /line 1: /],
  ];
  for (const [what, text, reason] of bad) {
    it(`rejects ${what}, naming the line`, () => {
      expect(() => parseNarInfo(text, { whence: "http://peer/x.narinfo" })).toThrow(reason);
      try {
        parseNarInfo(text);
      } catch (err) {
        expect(err).toBeInstanceOf(OgygiaError);
        expect((err as OgygiaError).code).toBe("ERR_OGYGIA_NIX_NARINFO");
      }
    });
  }

  it("under random mutations, returns a narinfo that renders and reparses, or our error", () => {
    const random = prng(0x0a11_f0);
    const alphabet =
      ":\n -_/.0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+=\r\0é";
    let accepted = 0;
    for (let i = 0; i < 5000; i++) {
      const base = [XZ, CA, MID][i % 3] ?? XZ;
      let text = base;
      for (let e = 0; e < 1 + randomInt(random, 3); e++) {
        const at = randomInt(random, text.length + 1);
        const ch = alphabet.charAt(randomInt(random, alphabet.length));
        const lines = text.split("\n");
        switch (randomInt(random, 5)) {
          case 0:
            text = text.slice(0, at) + ch + text.slice(at + 1);
            break;
          case 1:
            text = text.slice(0, at) + ch + text.slice(at);
            break;
          case 2:
            text = text.slice(0, at) + text.slice(at + 1 + randomInt(random, 10));
            break;
          case 3: {
            const line = randomInt(random, lines.length);
            lines.splice(line, 0, lines[randomInt(random, lines.length)] ?? "");
            text = lines.join("\n");
            break;
          }
          default: {
            lines.splice(randomInt(random, lines.length), 1);
            text = lines.join("\n");
          }
        }
      }
      let parsed;
      try {
        parsed = parseNarInfo(text);
      } catch (err) {
        if (!(err instanceof OgygiaError) || err.code !== "ERR_OGYGIA_NIX_NARINFO") {
          throw new Error(`iteration ${i}: unexpected ${String(err)}`, { cause: err });
        }
        continue;
      }
      accepted += 1;
      const rendered = renderNarInfo(parsed);
      expect(renderNarInfo(parseNarInfo(rendered)), `iteration ${i}`).toBe(rendered);
    }
    expect(accepted).toBeGreaterThan(0);
  });
});
