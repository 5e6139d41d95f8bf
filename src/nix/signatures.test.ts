import { describe, expect, it } from "vitest";

import type { OgygiaError } from "../core/index.js";
import { parseHash } from "./hash.js";
import {
  checkPathSignatures,
  createTrustedKeys,
  formatPublicKey,
  generateSecretKey,
  parsePublicKey,
  parseSecretKey,
  pathFingerprint,
  signFingerprint,
  signPath,
  verifyFingerprint,
} from "./signatures.js";

// Made by `nix key generate-secret` and `nix store sign` (Nix 2.8).
const SECRET =
  "test-1:rCnY4ttNer1SyJH5r2bx+kQusWO8h4Kck8qLfbAYVUu+XFBJHd1EGYCmHlSdO/v2g57LEdhg21Hae9F3WLgLrg==";
const PUBLIC = "test-1:vlxQSR3dRBmAph5UnTv79oOeyxHYYNtR2nvRd1i4C64=";
const TOP = {
  storePath: "/nix/store/6c3c4dx6b7wndjn5h3qs3h4bpkaxhp3g-top",
  narHash: parseHash("sha256-nzbjAkLp1TSZIYuzyoC/O98pHH/X1vWtJ7yLdgMIMf4="),
  narSize: 328,
  references: ["/nix/store/rjbgwy78gaxjs1zsypaj1g9x31c0sm1r-mid"],
};
const TOP_SIG =
  "test-1:gjz73637noU0mgTx5Yn/yfNeODYtoZsK8tu7ZmxpFgrpOXA2UujrCZAR0b1kzVio0hR39Km5lWULF+4oAdWVCg==";

describe("signatures", () => {
  it("computes Nix's fingerprint", () => {
    expect(pathFingerprint(TOP)).toBe(
      "1;/nix/store/6c3c4dx6b7wndjn5h3qs3h4bpkaxhp3g-top;sha256:1zii101pd2xw4ynzbmnpgwf2kprvpy0cmcwb46ck9mg9881f6dlz;328;/nix/store/rjbgwy78gaxjs1zsypaj1g9x31c0sm1r-mid",
    );
    const two = {
      ...TOP,
      references: [
        "/nix/store/rjbgwy78gaxjs1zsypaj1g9x31c0sm1r-mid",
        "/nix/store/f70mfb2h1q5ci1ngz247qhprd24565hn-leaf",
      ],
    };
    expect(
      pathFingerprint(two).endsWith(
        ";/nix/store/f70mfb2h1q5ci1ngz247qhprd24565hn-leaf,/nix/store/rjbgwy78gaxjs1zsypaj1g9x31c0sm1r-mid",
      ),
    ).toBe(true);
  });

  it("verifies a signature made by nix store sign, and signs identically (Ed25519 is deterministic)", () => {
    const trusted = createTrustedKeys([PUBLIC]);
    expect(verifyFingerprint(pathFingerprint(TOP), TOP_SIG, trusted)).toBe(true);
    const secret = parseSecretKey(SECRET);
    expect(formatPublicKey(secret.publicKey)).toBe(PUBLIC);
    expect(signPath(secret, TOP)).toBe(TOP_SIG);
  });

  it("rejects a tampered fingerprint, an unknown key and a mangled signature", () => {
    const trusted = createTrustedKeys([PUBLIC]);
    const fingerprint = pathFingerprint(TOP);
    expect(verifyFingerprint(fingerprint.replace(";328;", ";329;"), TOP_SIG, trusted)).toBe(false);
    expect(verifyFingerprint(pathFingerprint({ ...TOP, references: [] }), TOP_SIG, trusted)).toBe(
      false,
    );
    expect(verifyFingerprint(fingerprint, TOP_SIG.replace("test-1", "other"), trusted)).toBe(false);
    expect(verifyFingerprint(fingerprint, TOP_SIG.slice(0, -4), trusted)).toBe(false);
    expect(verifyFingerprint(fingerprint, "test-1:" + "A".repeat(86) + "==", trusted)).toBe(false);
    expect(verifyFingerprint(fingerprint, "nocolon", trusted)).toBe(false);
  });

  it("accepts signed and content-addressed paths, and refuses unsigned ones", () => {
    const trusted = createTrustedKeys([PUBLIC]);
    expect(checkPathSignatures({ ...TOP, sigs: [TOP_SIG] }, trusted)).toEqual({
      trusted: true,
      reason: "signed",
      signers: ["test-1"],
    });
    expect(checkPathSignatures({ ...TOP, sigs: [] }, trusted).trusted).toBe(false);
    const catree = {
      storePath: "/nix/store/n1gqkrv0njv9y5b718d25lb2qw53f9as-catree",
      narHash: parseHash("sha256:0l3163ffabgwv6vm3hzpgp74dfgqa9gl6qp16mjw1xq796m8zxnk"),
      narSize: 456,
      references: [],
      sigs: [],
      ca: "fixed:r:sha256:0l3163ffabgwv6vm3hzpgp74dfgqa9gl6qp16mjw1xq796m8zxnk",
    };
    expect(checkPathSignatures(catree, createTrustedKeys([])).reason).toBe("content-addressed");
    // A CA claim that does not produce the path is worth nothing.
    const liar = { ...TOP, sigs: [], ca: catree.ca };
    expect(checkPathSignatures(liar, trusted).trusted).toBe(false);
  });

  it("generates keys that round-trip and sign verifiably", () => {
    const text = generateSecretKey("fresh-1");
    const secret = parseSecretKey(text);
    const trusted = createTrustedKeys([formatPublicKey(secret.publicKey)]);
    const sig = signFingerprint(secret, "hello");
    expect(sig.startsWith("fresh-1:")).toBe(true);
    expect(verifyFingerprint("hello", sig, trusted)).toBe(true);
    expect(verifyFingerprint("hullo", sig, trusted)).toBe(false);
  });

  it("explains what is wrong with a bad key file", () => {
    const cases: [() => unknown, RegExp][] = [
      [() => parseSecretKey(""), /secret key is empty/],
      [() => parseSecretKey("abc"), /no 'name:' prefix/],
      [() => parseSecretKey(`:${SECRET.split(":")[1] ?? ""}`), /empty name/],
      [() => parseSecretKey("test-1:"), /no key material/],
      [() => parseSecretKey("test-1:!!!!"), /not valid base64/],
      [() => parseSecretKey(PUBLIC), /has 32 bytes, expected 64 \(is this the public key\?\)/],
      [() => parsePublicKey(SECRET), /has 64 bytes, expected 32 \(is this the secret key\?\)/],
      [
        () => {
          const raw = Buffer.from(SECRET.split(":")[1] ?? "", "base64");
          raw[40] = (raw[40] ?? 0) ^ 1;
          return parseSecretKey(`test-1:${raw.toString("base64")}`);
        },
        /public half does not match its seed/,
      ],
      [
        () => createTrustedKeys([PUBLIC, `test-1:${Buffer.alloc(32, 1).toString("base64")}`]),
        /two different keys are named 'test-1'/,
      ],
    ];
    for (const [run, reason] of cases) {
      expect(run).toThrow(reason);
      try {
        run();
      } catch (err) {
        expect((err as OgygiaError).code).toBe("ERR_OGYGIA_NIX_KEY");
      }
    }
    // A trailing newline (as editors add) is fine.
    expect(parseSecretKey(`${SECRET}\n`).name).toBe("test-1");
  });
});
