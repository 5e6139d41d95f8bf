import { describe, expect, it } from "vitest";

import { OgygiaError } from "../core/index.js";
import {
  contentAddressedPath,
  formatContentAddress,
  isContentAddressed,
  parseContentAddress,
} from "./content-address.js";

// Taken from a Nix 2.8 store database on this project's machines.
const LEAF_DRV = "/nix/store/zz75wq43v2q6vj80wqn91jf6bn1i3lvz-leaf.drv";
const MID_DRV = "/nix/store/a71vpf6mzsqr1dh0z5p51a0vszj7q004-mid.drv";
const CASES = [
  {
    storePath: LEAF_DRV,
    ca: "text:sha256:0iwfrvbvxhh930ny5wr3br7gh6vg2ppqhmnrik5bwixk6s9bap8h",
    references: [] as string[],
  },
  {
    storePath: MID_DRV,
    ca: "text:sha256:0ldr52gi42hlwj94n1haa1m422jypsg5mag1zmda81jlzjdf4b46",
    references: [LEAF_DRV],
  },
  {
    storePath: "/nix/store/n1gqkrv0njv9y5b718d25lb2qw53f9as-catree",
    ca: "fixed:r:sha256:0l3163ffabgwv6vm3hzpgp74dfgqa9gl6qp16mjw1xq796m8zxnk",
    references: [] as string[],
  },
  {
    storePath: "/nix/store/37xrjbmb2m563q3jb13jv6xnwwy4760n-flatfile",
    ca: "fixed:sha256:1xk2hhjr0f2n4adj1h688wlz59xpl86y1r8bd2pjasg8gy16mikb",
    references: [] as string[],
  },
];

describe("content addresses", () => {
  it("recomputes the store paths of text, recursive and flat content-addressed paths", () => {
    for (const c of CASES) {
      expect(isContentAddressed(c), c.storePath).toBe(true);
    }
  });

  it("refuses a path whose content address does not match it", () => {
    const [leaf, mid] = CASES;
    if (!leaf || !mid) throw new Error("missing cases");
    expect(isContentAddressed({ ...leaf, storePath: MID_DRV })).toBe(false);
    expect(isContentAddressed({ ...mid, references: [] })).toBe(false);
    expect(isContentAddressed({ ...leaf, ca: undefined })).toBe(false);
    expect(isContentAddressed({ ...leaf, ca: "garbage" })).toBe(false);
  });

  it("parses and renders Nix's content-address syntax", () => {
    for (const c of CASES) expect(formatContentAddress(parseContentAddress(c.ca))).toBe(c.ca);
    const hex = "fixed:r:sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    expect(formatContentAddress(parseContentAddress(hex))).toBe(
      "fixed:r:sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73",
    );
    for (const bad of [
      "text:sha1:143xibwh31h9bvxzalr0sjvbbvpa6ffs",
      "nar:sha256:x",
      "fixed",
      "text:abc",
    ]) {
      expect(() => parseContentAddress(bad), bad).toThrow(OgygiaError);
    }
  });

  it("admits no path for a flat fixed output with references", () => {
    const ca = parseContentAddress(CASES[3]?.ca ?? "");
    expect(contentAddressedPath(ca, "flatfile", [LEAF_DRV])).toBeUndefined();
  });
});
