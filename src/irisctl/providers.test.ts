import { describe, expect, it } from "vitest";

import { renderProviders, resolveHashPart } from "./providers.js";

const HASH = "0c2g1lqlkpn6gyxxk6cyqk0m1yhirw5a";

describe("resolveHashPart", () => {
  it("takes a hash part, a base name, a store path or a path inside one", async () => {
    expect(await resolveHashPart(HASH)).toBe(HASH);
    expect(await resolveHashPart(`${HASH}-hello-2.12`)).toBe(HASH);
    expect(await resolveHashPart(`/nix/store/${HASH}-hello-2.12`)).toBe(HASH);
    expect(await resolveHashPart(`/nix/store/${HASH}-hello-2.12/bin/hello`)).toBe(HASH);
  });

  it("refuses anything else with a usage error", async () => {
    await expect(resolveHashPart("hello")).rejects.toThrow(/neither a hash part nor a store path/);
    await expect(resolveHashPart(`/nix/store/${"e".repeat(32)}-bad`)).rejects.toThrow(
      /not a valid store path/,
    );
    await expect(resolveHashPart("/etc/hostname")).rejects.toThrow(/which is not in \/nix\/store/);
  });
});

describe("renderProviders", () => {
  it("names each provider with its size and signers", () => {
    expect(
      renderProviders({
        hash: HASH,
        local: true,
        providers: [
          {
            url: "http://10.0.0.2:35742",
            storePath: `/nix/store/${HASH}-hello`,
            narHash: "sha256:x",
            narSize: 3 * 1024 * 1024,
            signatures: ["cache-1", "cache-2"],
          },
          {
            url: "http://10.0.0.33:35742",
            storePath: `/nix/store/${HASH}-hello`,
            narHash: "sha256:x",
            narSize: 512,
            signatures: [],
          },
        ],
      }),
    ).toEqual([
      `${HASH}: in the local store, and on 2 peers`,
      `  http://10.0.0.2:35742   /nix/store/${HASH}-hello  3.0 MiB  signed by cache-1, cache-2`,
      `  http://10.0.0.33:35742  /nix/store/${HASH}-hello  512 B    content-addressed`,
    ]);
  });

  it("says plainly when nobody has the path", () => {
    expect(renderProviders({ hash: HASH, local: false, providers: [] })).toEqual([
      `${HASH}: nobody has it (not in the local store, no peer confirmed it)`,
    ]);
  });
});
