import { describe, expect, it } from "vitest";

import { naturalCompare, naturalSortBy } from "./natural-sort.js";

describe("naturalCompare", () => {
  it("compares digit runs by value and text without case", () => {
    const sorted = ["host10", "host9", "Host1", "host01a", "alpha", "host1b", "host100"].sort(
      naturalCompare,
    );
    expect(sorted).toEqual(["alpha", "Host1", "host01a", "host1b", "host9", "host10", "host100"]);
    expect(naturalCompare("a", "a")).toBe(0);
    expect(naturalCompare("a", "a1")).toBeLessThan(0);
  });
});

describe("naturalSortBy", () => {
  it("breaks ties by the second name, then keeps the input order", () => {
    const items = [
      { name: "web10", tie: "b", id: 1 },
      { name: "web2", tie: "b", id: 2 },
      { name: "web2", tie: "a", id: 3 },
      { name: "web2", tie: "a", id: 4 },
      { name: "wéb1", tie: "a", id: 5 },
    ];
    const ids = (sorted: typeof items): number[] => sorted.map((item) => item.id);
    const byName = (item: (typeof items)[number]): string => item.name;
    const byTie = (item: (typeof items)[number]): string => item.tie;
    // With a non-ASCII name the slow path sorts; without, the fast one: same order.
    expect(ids(naturalSortBy(items, byName, byTie))).toEqual([3, 4, 2, 1, 5]);
    expect(ids(naturalSortBy(items.slice(0, 4), byName, byTie))).toEqual([3, 4, 2, 1]);
  });
});
