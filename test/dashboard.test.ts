/**
 * `ogygia dashboard` against each backend's real server, with real
 * `ogygia publish` processes, seen through the system's Chromium: the page
 * lists the fleet and follows it live, renders hostile values as text,
 * keeps its view in the URL, keeps history across restarts, and says when
 * it is disconnected. The API and the refusal to listen openly without a
 * token are checked from Node.
 */

import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { launchChromium, startDashboard, type Dashboard } from "./helpers/dashboard.js";
import { FLEET_HARNESSES, type FleetServer } from "./helpers/fleet.js";
import { removeDir, tempDir, waitFor, type ManagedProcess } from "./helpers/process.js";
import {
  REV,
  standardBootRoot,
  startPublisher,
  uniqueNamespace,
  type BootRoot,
} from "./helpers/publish.js";
import { writeConfig } from "./helpers/system-root.js";

/**
 * Where the screenshots go: a temporary folder, looked at by whoever runs
 * the tests; `npm run screenshots` sets it to docs/ to refresh the README's.
 */
const SHOTS = process.env.OGYGIA_SCREENSHOTS ?? path.join(os.tmpdir(), "ogygia-dashboard-shots");

const DOMAIN = "example.com";
const PUBLISHED = ["web01.example.com", "web02.example.com", "db01.example.com"];
/** A host name and values that would run script if rendered as HTML. */
const EVIL_HOST = `<img src=x onerror="window.__pwned=1">.${DOMAIN}`;
const EVIL_VALUE = `</script><script>window.__pwned=2</script>"'<b>`;

const UPDATE_TARGET = "/nix/store/0d3l1v5q2y7k9h4m8c6r1w3z5b7n9p2f-nixos-system-app-24.05";
const UPDATES: [host: string, state: string, error: string | null][] = [
  [`app05.${DOMAIN}`, "activating", null],
  [`app10.${DOMAIN}`, "rolled-back", "unhealthy: probe 'curl -fs localhost:8080/health' exited 7"],
];

/** Hosts written straight to the backend (no publisher: shown offline), for a fuller fleet. */
function seededHosts(namespace: string): [string, string][] {
  const now = Date.now();
  const entries: [string, string][] = [];
  const revisions = [REV.a, REV.a, REV.a, REV.c, REV.c, REV.d];
  for (let i = 1; i <= 12; i += 1) {
    const host = `app${String(i).padStart(2, "0")}.${DOMAIN}`;
    const revision = revisions[i % revisions.length] ?? REV.a;
    entries.push(
      [`${namespace}/${host}/current`, revision],
      [`${namespace}/${host}/booted`, i % 4 === 0 ? REV.d : revision],
      [`${namespace}/${host}/nextboot`, i % 5 === 0 ? REV.b : revision],
      [`${namespace}/${host}/reboot_required`, i % 4 === 0 ? "true" : "false"],
      [`${namespace}/${host}/updated_at`, new Date(now - i * 97_000).toISOString()],
    );
    // Written once, outliving any publisher: online as far as the dashboard can tell.
    if (i % 6 !== 0) entries.push([`${namespace}/${host}/alive`, "1"]);
  }
  // Two hosts in a rollout: one mid-update, one whose update was rolled back.
  for (const [host, state, error] of UPDATES) {
    entries.push(
      [`${namespace}/${host}/update_target`, UPDATE_TARGET],
      [`${namespace}/${host}/update_state`, state],
    );
    if (error !== null) entries.push([`${namespace}/${host}/update_error`, error]);
  }
  entries.push(
    [`${namespace}/${EVIL_HOST}/current`, EVIL_VALUE],
    [`${namespace}/${EVIL_HOST}/booted`, REV.a],
  );
  return entries;
}

/** The row of `host` in the open fleet page (rendered rows only). */
function row(page: Page, host: string): ReturnType<Page["locator"]> {
  return page.locator(`.rows .row[data-host="${host.replace(/["\\]/g, "\\$&")}"]`);
}

describe.each(FLEET_HARNESSES)("ogygia dashboard with $label", (harness) => {
  let server: FleetServer;
  let browser: Browser;
  let namespace: string;
  let configFile: string;
  let stateDir: string;
  let emptyRoot: string;
  let dashboard: Dashboard;
  const roots = new Map<string, BootRoot>();
  const publishers = new Map<string, ManagedProcess>();

  beforeAll(async () => {
    [server, browser] = await Promise.all([harness.start(), launchChromium()]);
    namespace = uniqueNamespace();
    configFile = await writeConfig(
      [
        "[ogygia]",
        `domain = "${DOMAIN}"`,
        "",
        `[ogygia.${harness.kind}]`,
        `endpoints = ["${server.endpoint}"]`,
        `namespace = "${namespace}"`,
        "timeout_seconds = 2",
        "",
        "[ogygia.publish]",
        "lease_ttl_seconds = 2",
        "resync_interval_seconds = 300",
        "",
      ].join("\n"),
    );
    stateDir = await tempDir("dashboard-state");
    emptyRoot = await tempDir("dashboard-root");
    await server.put(seededHosts(namespace));
    for (const host of PUBLISHED) {
      const root = await standardBootRoot();
      roots.set(host, root);
      publishers.set(host, startPublisher({ config: configFile, root: root.root, host }));
    }
    await waitFor(
      "every publisher to hold alive",
      async () => {
        for (const [host, proc] of publishers) {
          if (proc.child.exitCode !== null) throw new Error(`${host} exited:\n${proc.output()}`);
          if ((await server.get(`${namespace}/${host}/alive`)) === null) return undefined;
        }
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    dashboard = await startDashboard({ config: configFile, stateDir, root: emptyRoot });
  });

  afterAll(async () => {
    await dashboard.stop();
    await Promise.all([...publishers.values()].map((p) => p.stop("SIGKILL")));
    await Promise.all([...roots.values()].map((r) => r.remove()));
    await browser.close();
    await server.stop();
    await removeDir(stateDir);
    await removeDir(emptyRoot);
  });

  async function openFleet(query = ""): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("pageerror", (err) => {
      throw err;
    });
    await page.goto(`${dashboard.url}/${query}`);
    await page.locator(".rows .row").first().waitFor();
    return page;
  }

  it("lists every host with trimmed names, short revisions and the full ones on hover", async () => {
    const page = await openFleet();
    for (const host of PUBLISHED) {
      const r = row(page, host);
      await r.waitFor();
      expect(await r.locator(".c-host a").textContent()).toBe(host.replace(`.${DOMAIN}`, ""));
      const current = r.locator(".cell").nth(1).locator(".rev");
      expect(await current.textContent()).toBe(REV.a.slice(0, 12));
      expect(await current.getAttribute("title")).toBe(REV.a);
      expect(await r.locator(".online").textContent()).toBe("online");
      expect(await r.locator(".reboot-yes").textContent()).toBe("required");
    }
    // 3 published + 12 seeded + the hostile one + this host.
    expect(await page.locator(".shown").textContent()).toBe("17 hosts");
    for (const [host, state, error] of UPDATES) {
      const tag = row(page, host).locator(".tag.update");
      expect(await tag.textContent()).toBe(`update: ${state}`);
      expect(await tag.getAttribute("title")).toBe(error ?? UPDATE_TARGET);
      expect(await tag.evaluate((node) => node.classList.contains("update-failed"))).toBe(
        error !== null,
      );
    }
    if (harness.kind === "etcd") {
      await mkdir(SHOTS, { recursive: true });
      await page.screenshot({ path: path.join(SHOTS, "dashboard.png") });
    }
    await page.close();
  });

  it("copies a full revision on click, and moves between rows by keyboard past the rendered ones", async () => {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 600 },
      permissions: ["clipboard-read", "clipboard-write"],
    });
    const page = await context.newPage();
    page.on("pageerror", (err) => {
      throw err;
    });
    try {
      await page.goto(`${dashboard.url}/?sort=host`);
      const web01 = row(page, "web01.example.com");
      await web01.waitFor();
      await web01.locator(".rev").first().click();
      await page.locator(".toast").getByText(`Copied ${REV.a}`).waitFor();
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(REV.a);

      // Keyboard: from the first row's host link, Down moves one row, End to the last.
      await page.locator(".shown").getByText("17 hosts").waitFor();
      const hosts = await page
        .locator(".rows .row")
        .evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.host));
      await page.locator(".rows .row .c-host a").first().focus();
      await page.keyboard.press("ArrowDown");
      const focusedHost = (): Promise<string | undefined> =>
        page.evaluate(
          () => document.activeElement?.closest<HTMLElement>(".row")?.dataset.host ?? undefined,
        );
      expect(await focusedHost()).toBe(hosts[1]);
      await page.keyboard.press("ArrowRight");
      expect(await page.evaluate(() => document.activeElement?.className)).toMatch(/\brev\b/);
      await page.keyboard.press("End");
      const endHost = await focusedHost();
      expect(endHost).toBeDefined();
      expect(endHost).not.toBe(hosts[1]);
      // The focused row is the last one of the sorted table.
      const lastRow = await page.locator(".rows .row").last().getAttribute("data-host");
      expect(endHost).toBe(lastRow);
      // Home: the table's first host (the hostile name sorts first), scrolled back into view.
      await page.keyboard.press("Home");
      expect(await focusedHost()).toBe(EVIL_HOST);
      expect(await page.locator(".viewport").evaluate((v) => v.scrollTop)).toBe(0);
    } finally {
      await context.close();
    }
  });

  it("fits a phone's width in the dark theme", async () => {
    const context = await browser.newContext({
      viewport: { width: 390, height: 844 },
      colorScheme: "dark",
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const page = await context.newPage();
    try {
      await page.goto(`${dashboard.url}/`);
      await row(page, "web01.example.com").waitFor();
      const layout = await page.evaluate(() => {
        const rgb =
          getComputedStyle(document.body).backgroundColor.match(/\d+/g)?.map(Number) ?? [];
        return {
          overflow: document.documentElement.scrollWidth - window.innerWidth,
          brightness: ((rgb[0] ?? 255) + (rgb[1] ?? 255) + (rgb[2] ?? 255)) / 3,
        };
      });
      expect(layout.overflow).toBeLessThanOrEqual(0);
      expect(layout.brightness).toBeLessThan(60);
      if (harness.kind === "etcd") {
        await mkdir(SHOTS, { recursive: true });
        await page.screenshot({ path: path.join(SHOTS, "dashboard-phone-dark.png") });
      }
    } finally {
      await context.close();
    }
  });

  it("serves /api/fleet as the same document as ogygia status --json, with safe headers", async () => {
    const res = await fetch(`${dashboard.url}/api/fleet`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toMatch(/script-src 'self'/);
    expect(res.headers.get("content-security-policy")).not.toMatch(/unsafe-inline/);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    const fleet = (await res.json()) as { hosts: { host: string }[] };
    const status = await runCli(["status", "--json", "--root", emptyRoot], {
      env: { OGYGIA_CONFIG: configFile, OGYGIA_HOSTNAME: "observer.example.org" },
    });
    expect(status.code).toBe(0);
    const expected = JSON.parse(status.stdout) as { hosts: { host: string }[] };
    const byName = (doc: { hosts: { host: string }[] }): unknown[] =>
      [...doc.hosts].sort((a, b) => a.host.localeCompare(b.host));
    expect(byName(fleet)).toEqual(byName(expected));
    expect({ ...fleet, hosts: [] }).toEqual({ ...expected, hosts: [] });

    const metrics = await (await fetch(`${dashboard.url}/metrics`)).text();
    expect(metrics).toMatch(/^ogygia_fleet_hosts\{state="online"\} 13$/m);
    expect(metrics).toMatch(/^ogygia_fleet_backend_reachable 1$/m);
    expect(metrics).toMatch(/^ogygia_fleet_hosts_reboot_required 6$/m);
    expect(metrics).toContain(`ogygia_fleet_hosts_per_revision{revision="${REV.c}"}`);
    // 12 seeded hosts and 3 publishers have an updated_at; the oldest was written 12 × 97 s before.
    expect(metrics).toMatch(/^ogygia_fleet_host_update_age_seconds_count 15$/m);
    const oldest = /^ogygia_fleet_host_update_age_seconds\{quantile="1"\} ([\d.e+]+)$/m.exec(
      metrics,
    );
    expect(Number(oldest?.[1])).toBeGreaterThanOrEqual(12 * 97);
    expect((await fetch(`${dashboard.url}/api/fleet`, { method: "POST" })).status).toBe(405);
  });

  it("shows a hostile host name and values as text, and runs no script", async () => {
    const page = await openFleet(`?q=${encodeURIComponent("onerror")}`);
    const r = row(page, EVIL_HOST);
    await r.waitFor();
    expect(await r.locator(".c-host a").textContent()).toBe(EVIL_HOST.replace(`.${DOMAIN}`, ""));
    expect(await r.locator(".rev").first().getAttribute("title")).toBe(EVIL_VALUE);
    expect(await page.locator("img, script:not([src]), b").count()).toBe(0);
    await page.goto(`${dashboard.url}/host/${encodeURIComponent(EVIL_HOST)}`);
    await page.locator(".keys code").first().waitFor();
    expect(await page.locator(".host-name").textContent()).toBe(EVIL_HOST);
    expect(await page.locator(".keys code").first().textContent()).toBe(EVIL_VALUE);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBe(
      undefined,
    );
    await page.close();
  });

  it("shows a state link change and a stopped publisher without a reload", async () => {
    const page = await openFleet();
    await page.evaluate(() => {
      (window as unknown as { __sameDocument: boolean }).__sameDocument = true;
    });
    const root = roots.get("web01.example.com");
    await root?.switchSystem("current", { revision: REV.c, kernel: "linux-6.6.2" });
    await row(page, "web01.example.com")
      .locator(`.rev[title="${REV.c}"]`)
      .waitFor({ timeout: 20_000 });

    await publishers.get("web02.example.com")?.stop("SIGTERM");
    await row(page, "web02.example.com").locator(".offline").waitFor({ timeout: 20_000 });
    expect(
      await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument),
    ).toBe(true);
    await page.close();
  });

  it("shows a host's update state as its agent publishes it, and clears it once confirmed", async () => {
    const page = await openFleet();
    const host = "app03.example.com";
    await server.put([
      [
        `${namespace}/${host}/update_target`,
        "/nix/store/00000000000000000000000000000000-nixos-system-x",
      ],
      [`${namespace}/${host}/update_state`, "checking"],
    ]);
    const tag = row(page, host).locator(".tag.update");
    await tag.waitFor({ timeout: 20_000 });
    expect(await tag.textContent()).toBe("update: checking");
    await server.put([[`${namespace}/${host}/update_state`, "confirmed"]]);
    await tag.waitFor({ state: "detached", timeout: 20_000 });
    await page.close();
  });

  it("filters, sorts and keeps both in the URL", async () => {
    const page = await openFleet();
    await page.locator(".filter").fill("app0");
    await page.waitForFunction(() => location.search === "?q=app0");
    // The URL changes at once, the table on the next animation frame.
    await page.locator(".shown").getByText("9 of 17 hosts").waitFor();
    expect(await page.locator(".shown").textContent()).toBe("9 of 17 hosts");
    await page.locator('button[data-sort="host"]').click();
    await page.waitForFunction(() => new URLSearchParams(location.search).get("dir") === "desc");
    await page.locator('[role="columnheader"][aria-sort="descending"]').waitFor();
    const names = async (): Promise<string[]> =>
      page.locator(".rows .row .c-host a").allTextContents();
    expect(await names()).toEqual([
      "app09",
      "app08",
      "app07",
      "app06",
      "app05",
      "app04",
      "app03",
      "app02",
      "app01",
    ]);

    // The same URL in a new page shows the same view.
    const shared = await openFleet(`?q=app0&dir=desc`);
    expect(await shared.locator(".filter").inputValue()).toBe("app0");
    expect(await shared.locator(".rows .row .c-host a").allTextContents()).toEqual(await names());
    expect(await shared.locator('[role="columnheader"][aria-sort="descending"]').count()).toBe(1);

    // A click on a count filters; the chip clears it.
    await shared.locator('.count[data-only="pending"]').click();
    await shared.waitForFunction(() => location.search.includes("only=pending"));
    const pending = await shared.locator('.count[data-only="pending"] .count-value').textContent();
    await shared.locator(".shown").getByText(`${pending} of 17 hosts`).waitFor();
    expect(await shared.locator(".rows .row .c-host a").allTextContents()).toEqual([
      "web02",
      "web01",
      "db01",
      "app12",
      "app10",
      "app08",
      "app05",
      "app04",
      EVIL_HOST.replace(`.${DOMAIN}`, ""),
    ]);
    await shared.goBack();
    await shared.waitForFunction(() => !location.search.includes("only="));
    await page.close();
    await shared.close();
  });

  it("keeps each host's history across a restart, and says when the server is away", async () => {
    const host = "web01.example.com";
    const page = await browser.newPage();
    await page.goto(`${dashboard.url}/host/${encodeURIComponent(host)}`);
    await page.locator(".history tbody tr").nth(1).waitFor({ timeout: 20_000 });
    const before = await page.locator(".history tbody tr").count();
    if (harness.kind === "etcd") {
      await page.setViewportSize({ width: 1100, height: 760 });
      await mkdir(SHOTS, { recursive: true });
      await page.screenshot({ path: path.join(SHOTS, "dashboard-host.png") });
    }

    expect(await dashboard.stop()).toBe(0);
    await page.locator(".banner").getByText("Disconnected").waitFor({ timeout: 20_000 });

    dashboard = await startDashboard({
      config: configFile,
      stateDir,
      root: emptyRoot,
      port: dashboard.port,
    });
    await page.locator(".banner").waitFor({ state: "hidden", timeout: 20_000 });
    await page.reload();
    await page
      .locator(".history tbody tr")
      .nth(before - 1)
      .waitFor();
    expect(await page.locator(".history tbody tr").count()).toBe(before);
    const res = await fetch(`${dashboard.url}/api/hosts/${encodeURIComponent(host)}/history`);
    const history = (await res.json()) as { entries: { current: string }[] };
    expect(history.entries.map((e) => e.current)).toEqual([REV.a, REV.c]);
    await page.close();
  });

  it("refuses to listen on a non-loopback address without a token file", async () => {
    const result = await runCli(["dashboard", "--listen", "0.0.0.0:0", "--config", configFile]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/refusing to listen on 0\.0\.0\.0:0 without a token/);
    expect(result.stderr).toMatch(/--token-file/);
  });
});

describe("ogygia dashboard with a token", () => {
  it("asks for the bearer token, and accepts it", async () => {
    const dir = await tempDir("dashboard-token");
    try {
      const tokenFile = path.join(dir, "token");
      await writeFile(tokenFile, "s3cret-token\n");
      await mkdir(path.join(dir, "state"));
      const config = await writeConfig(
        '[ogygia.etcd]\nendpoints = ["http://127.0.0.1:9"]\nnamespace = "/t"\ntimeout_seconds = 1\n',
      );
      const dash = await startDashboard({
        config,
        stateDir: path.join(dir, "state"),
        root: dir,
        extraArgs: ["--token-file", tokenFile],
      });
      try {
        expect((await fetch(`${dash.url}/metrics`)).status).toBe(401);
        const ok = await fetch(`${dash.url}/metrics`, {
          headers: { authorization: "Bearer s3cret-token" },
        });
        expect(ok.status).toBe(200);
        expect(await ok.text()).toMatch(/^ogygia_fleet_backend_reachable 0$/m);
      } finally {
        expect(await dash.stop()).toBe(0);
      }
    } finally {
      await removeDir(dir);
    }
  });
});
