import { describe, expect, it } from "vitest";

import {
  contentAddressedPath,
  createTrustedKeys,
  formatHash,
  hashFromDigest,
  parseNarInfo,
  type Hash,
  type NarInfo,
} from "../../nix/index.js";
import {
  hashPartOf,
  narInfoText,
  narOfDirectory,
  narOfFile,
  sha256,
  signedInfo,
  testKey,
  textInfo,
} from "../../../test/support/p2p.js";
import { contentCheckFor, renderPeerNarInfo, verifyPeerNarInfo } from "./peer-narinfo.js";

const STORE = "/nix/store";
const { secret, trusted } = testKey("fleet-1");
const stranger = testKey("stranger-1").secret;

function verify(text: string | Buffer, hashPart: string, keys = trusted) {
  return verifyPeerNarInfo(typeof text === "string" ? Buffer.from(text) : text, {
    hashPart,
    trusted: keys,
    storeDir: STORE,
    whence: "from http://peer",
  });
}

describe("a peer's narinfo", () => {
  const nar = narOfFile(Buffer.from("hello\n"));
  const info = signedInfo(nar, secret);
  const hash = hashPartOf(info.storePath);

  it("is accepted when a trusted key signed it, with the key named", () => {
    const verdict = verify(narInfoText(info), hash);
    expect(verdict).toMatchObject({ ok: true, signers: ["fleet-1"], contentAddressedOnly: false });
    if (verdict.ok) expect(verdict.narHash).toBe(formatHash(info.narHash, "nix32", false));
  });

  it("is refused when only an untrusted key signed it, or nobody did", () => {
    expect(verify(narInfoText(signedInfo(nar, stranger)), hash)).toMatchObject({ ok: false });
    const byStranger = signedInfo(nar, stranger);
    expect(verify(narInfoText(byStranger), hashPartOf(byStranger.storePath))).toMatchObject({
      ok: false,
      reason: "untrusted",
      message: expect.stringContaining("signed by stranger-1") as unknown,
    });
    const unsigned = signedInfo(nar);
    expect(verify(narInfoText(unsigned), hashPartOf(unsigned.storePath))).toMatchObject({
      ok: false,
      reason: "untrusted",
      message: expect.stringContaining("unsigned") as unknown,
    });
  });

  it("is refused when a trusted key's name carries another key's signature", () => {
    const impostor = testKey("fleet-1").secret; // same name, other key
    const forged = signedInfo(nar, impostor);
    expect(verify(narInfoText(forged), hashPartOf(forged.storePath))).toMatchObject({
      ok: false,
      reason: "untrusted",
    });
  });

  it("is refused when a signed field was changed (NarSize, References)", () => {
    const tampered: NarInfo = { ...info, narSize: info.narSize + 8 };
    expect(verify(narInfoText(tampered), hash)).toMatchObject({ ok: false, reason: "untrusted" });
    const other = signedInfo(nar, secret, "other");
    const withRef: NarInfo = { ...info, references: [other.storePath] };
    expect(verify(narInfoText(withRef), hash)).toMatchObject({ ok: false, reason: "untrusted" });
  });

  it("is refused when its StorePath is not the path asked for", () => {
    const other = signedInfo(nar, secret, "other");
    expect(verify(narInfoText(other), hash)).toMatchObject({
      ok: false,
      reason: "wrong-path",
      message: expect.stringContaining(other.storePath) as unknown,
    });
  });

  it("is refused when it does not parse strictly, or is not UTF-8", () => {
    const text = narInfoText(info);
    for (const bad of [
      text.replace("StorePath", "StorePath: x\nStorePath"),
      text.slice(0, -1),
      `${text}garbage\n`,
      text.replace(/NarSize: \d+/, "NarSize: -1"),
      "",
    ]) {
      expect(verify(bad, hash)).toMatchObject({ ok: false, reason: "malformed" });
    }
    expect(verify(Buffer.from([0xff, 0xfe, 0x0a]), hash)).toMatchObject({
      ok: false,
      reason: "malformed",
    });
  });

  it("is refused when it describes a compression other than zstd or a file other than the NAR", () => {
    const text = narInfoText(info);
    const xz = verify(text.replace("Compression: none", "Compression: xz"), hash);
    expect(xz).toMatchObject({ ok: false, reason: "unsupported" });
    if (!xz.ok) {
      expect(xz.message).toContain("from http://peer");
      expect(xz.message).toContain(info.storePath);
      expect(xz.message).toContain('"none" or "zstd"');
    }
    expect(verify(text.replace(/FileSize: \d+/, "FileSize: 1"), hash)).toMatchObject({
      ok: false,
      reason: "unsupported",
    });
  });

  it("is accepted as zstd, its FileHash and FileSize kept for the compressed file", () => {
    const text = narInfoText(info)
      .replace("Compression: none", "Compression: zstd")
      .replace(/FileSize: \d+/, "FileSize: 17");
    const verdict = verify(text, hash);
    expect(verdict).toMatchObject({ ok: true, file: { compression: "zstd", fileSize: 17 } });
    if (verdict.ok) {
      expect(verdict.file.compression === "zstd" && verdict.file.fileHash).toEqual(info.narHash);
      // Served to our own clients uncompressed, as the NAR it stands for.
      const ours = renderPeerNarInfo(verdict.info, STORE).toString("utf8");
      expect(ours).toContain("Compression: none");
      expect(ours).toContain(`FileSize: ${info.narSize}`);
    }
    expect(verify(narInfoText(info), hash)).toMatchObject({ file: { compression: "none" } });
  });

  it("is re-rendered with our URL and nothing the parser did not keep", () => {
    const text = narInfoText(info).replace("References:", "Unknown: yes\nReferences:");
    const verdict = verify(text, hash);
    if (!verdict.ok) throw new Error(verdict.message);
    const ours = renderPeerNarInfo(verdict.info, STORE).toString("utf8");
    const narHash = formatHash(info.narHash, "nix32", false);
    expect(ours).toContain(`\nURL: nar/${hash}-${narHash}.nar\n`);
    expect(ours).not.toContain("Unknown");
    expect(parseNarInfo(ours).sigs).toEqual(info.sigs);
  });
});

describe("a content-addressed path without a trusted signature", () => {
  it("is accepted for its CA, and its content is checked as it streams", () => {
    const contents = Buffer.from("Derive([])");
    const info = textInfo(contents);
    const verdict = verify(narInfoText(info), hashPartOf(info.storePath), createTrustedKeys([]));
    if (!verdict.ok) throw new Error(verdict.message);
    expect(verdict.contentAddressedOnly).toBe(true);
    const good = contentCheckFor(verdict, info.storePath);
    if (good === undefined) throw new Error("a text path needs a content check");
    good.write(narOfFile(contents));
    expect(() => {
      good.end();
    }).not.toThrow();

    const other = contentCheckFor(verdict, info.storePath);
    other?.write(narOfFile(Buffer.from("Derive([1")));
    expect(() => other?.end()).toThrow(/does not match its CA/);
    const directory = contentCheckFor(verdict, info.storePath);
    directory?.write(narOfDirectory(contents));
    expect(() => directory?.end()).toThrow(/not a single regular file/);
  });

  it("with fixed:r:sha256, needs its NAR hash to be the CA hash (checked on the narinfo)", () => {
    const nar = narOfFile(Buffer.from("source"));
    const caHash = hashFromDigest("sha256", sha256(nar));
    // A real recursive CA path for that NAR: makeStorePath("source", ...).
    const text = [
      "StorePath: /nix/store/PLACEHOLDER-src",
      "URL: nar/x.nar",
      "Compression: none",
      `NarHash: ${formatHash(caHash, "nix32")}`,
      `NarSize: ${nar.length}`,
      "References: ",
      `CA: fixed:r:${formatHash(caHash, "nix32")}`,
      "",
    ].join("\n");
    const storePath = contentPath(caHash);
    const good = text.replace("/nix/store/PLACEHOLDER-src", storePath);
    const verdict = verify(good, hashPartOf(storePath), createTrustedKeys([]));
    expect(verdict).toMatchObject({ ok: true, contentAddressedOnly: true });
    if (verdict.ok) expect(contentCheckFor(verdict, storePath)).toBeUndefined();
    const otherNar = hashFromDigest("sha256", sha256(Buffer.from("other")));
    const lying = good.replace(
      `NarHash: ${formatHash(caHash, "nix32")}`,
      `NarHash: ${formatHash(otherNar, "nix32")}`,
    );
    expect(verify(lying, hashPartOf(storePath), createTrustedKeys([]))).toMatchObject({
      ok: false,
      reason: "ca-mismatch",
    });
  });
});

function contentPath(hash: Hash): string {
  return contentAddressedPath({ method: "fixed", recursive: true, hash }, "src", []) ?? "";
}
