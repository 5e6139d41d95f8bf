import { describe, expect, it } from "vitest";

import {
  displayWidth,
  escapeForTerminal,
  hasUnsafeCharacters,
  padEndDisplay,
  prepareDisplayWidth,
  redactUrl,
} from "./text.js";

describe("escapeForTerminal", () => {
  it("makes control and bidi characters visible", () => {
    expect(escapeForTerminal("web\u001b[31mred\u0007")).toBe("web\\x1b[31mred\\x07");
    expect(escapeForTerminal("a\u202eb\u009bc")).toBe("a\\u{202e}b\\x9bc");
    expect(escapeForTerminal("tab\there\nnewline")).toBe("tab\\x09here\\x0anewline");
  });

  it("keeps printable text, including non-ASCII", () => {
    expect(escapeForTerminal("héllo wörld 東京 🥾")).toBe("héllo wörld 東京 🥾");
    expect(hasUnsafeCharacters("héllo")).toBe(false);
    expect(hasUnsafeCharacters("a\u0000")).toBe(true);
  });
});

describe("displayWidth", () => {
  it("counts ASCII and our labels without loading a library", () => {
    expect(displayWidth("web01")).toBe(5);
    expect(displayWidth("⚡ current")).toBe(10);
    expect(displayWidth("🥾 booted")).toBe(9);
    expect(displayWidth("🔜 next boot")).toBe(12);
  });

  it("counts wide characters as two columns once prepared", async () => {
    await prepareDisplayWidth(["東京"]);
    expect(displayWidth("東京")).toBe(4);
    expect(displayWidth("🥾x")).toBe(3);
    expect(padEndDisplay("東京", 6)).toBe("東京  ");
  });
});

describe("redactUrl", () => {
  it("hides credentials in endpoint URLs", () => {
    expect(redactUrl("http://root:s3cret@etcd1:2379")).toBe("http://***@etcd1:2379");
    expect(redactUrl("https://etcd1:2379")).toBe("https://etcd1:2379");
  });
});
