import { describe, expect, it } from "vitest";

import { createResolverChain, type PathResolver, type ServedNarInfo } from "./resolve.js";

function served(source: string): ServedNarInfo {
  return { storePath: `/nix/store/x-${source}`, body: Buffer.from(source), source };
}

function resolver(
  name: string,
  options: { local?: boolean; has?: string[]; async?: boolean; asked?: string[] },
): PathResolver {
  const answer = (hashPart: string): ServedNarInfo | undefined => {
    options.asked?.push(`${name}:${hashPart}`);
    return options.has?.includes(hashPart) === true ? served(name) : undefined;
  };
  return {
    name,
    local: options.local ?? false,
    narInfo: (hashPart) =>
      options.async === true ? Promise.resolve(answer(hashPart)) : answer(hashPart),
    nar: () => undefined,
  };
}

describe("resolver chain", () => {
  it("answers synchronously when a synchronous resolver has the path", () => {
    const chain = createResolverChain([resolver("local", { local: true, has: ["a"] })]);
    const answer = chain.narInfo("a");
    expect(answer).not.toBeInstanceOf(Promise);
    expect((answer as ServedNarInfo).source).toBe("local");
    expect(chain.narInfo("b")).toBeUndefined();
  });

  it("asks resolvers in order and stops at the first answer", async () => {
    const asked: string[] = [];
    const chain = createResolverChain([
      resolver("local", { local: true, has: ["a"], asked }),
      resolver("cache", { has: ["a", "b"], async: true, asked }),
      resolver("peers", { has: ["b", "c"], async: true, asked }),
    ]);
    expect((chain.narInfo("a") as ServedNarInfo).source).toBe("local");
    expect((await chain.narInfo("b"))?.source).toBe("cache");
    expect((await chain.narInfo("c"))?.source).toBe("peers");
    expect(await chain.narInfo("d")).toBeUndefined();
    expect(asked).toEqual([
      "local:a",
      "local:b",
      "cache:b",
      "local:c",
      "cache:c",
      "peers:c",
      "local:d",
      "cache:d",
      "peers:d",
    ]);
  });

  it("asks only local resolvers for the peer-only endpoints", async () => {
    const asked: string[] = [];
    const chain = createResolverChain([
      resolver("local", { local: true, asked }),
      resolver("peers", { has: ["c"], async: true, asked }),
    ]);
    expect(await chain.narInfo("c", { localOnly: true })).toBeUndefined();
    expect(asked).toEqual(["local:c"]);
  });

  it("closes every resolver, the last first", async () => {
    const closed: string[] = [];
    const chain = createResolverChain([
      { ...resolver("a", {}), close: () => void closed.push("a") },
      resolver("b", {}),
      { ...resolver("c", {}), close: () => Promise.resolve().then(() => void closed.push("c")) },
    ]);
    await chain.close();
    // Last first: a later resolver may use an earlier one until it is closed.
    expect(closed).toEqual(["c", "a"]);
  });
});
