import { describe, expect, it } from "vitest";

import { createByteLru } from "./local-store.js";

describe("createByteLru", () => {
  const buf = (n: number): Buffer => Buffer.alloc(n);

  it("keeps entries within the byte budget, dropping the least recently used", () => {
    const lru = createByteLru(10);
    lru.set("a", buf(4));
    lru.set("b", buf(4));
    expect(lru.get("a")?.length).toBe(4); // a is now the most recently used
    lru.set("c", buf(4)); // 12 > 10: b goes
    expect(lru.get("b")).toBeUndefined();
    expect(lru.get("a")).toBeDefined();
    expect(lru.get("c")).toBeDefined();
  });

  it("refuses an entry larger than the budget, and a zero budget keeps nothing", () => {
    const lru = createByteLru(3);
    lru.set("big", buf(4));
    expect(lru.get("big")).toBeUndefined();
    const none = createByteLru(0);
    none.set("x", buf(1));
    expect(none.get("x")).toBeUndefined();
  });

  it("replaces an entry under the same key without counting it twice", () => {
    const lru = createByteLru(8);
    lru.set("a", buf(4));
    lru.set("a", buf(4));
    lru.set("b", buf(4));
    expect(lru.get("a")).toBeDefined();
    expect(lru.get("b")).toBeDefined();
    lru.clear();
    expect(lru.get("a")).toBeUndefined();
  });
});
