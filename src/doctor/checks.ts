/**
 * The checks of `ogygia doctor`: each looks at one moving part and says
 * ok / warn / fail, what it found, and the fix. They run concurrently and
 * each network call has a deadline, so the whole command finishes within
 * the backend's `timeout_seconds` plus a second even when every endpoint
 * hangs.
 */

import { execFile } from "node:child_process";

import { loadConfig, type OgygiaConfig } from "../config/index.js";
import { configSource, type CommandOptions } from "../command/index.js";
import { OgygiaError, errorMessage, redactUrl } from "../core/index.js";
import {
  backendLabel,
  configuredBackend,
  openFleetBackend,
  type BackendKind,
  type FleetSnapshot,
} from "../fleet/index.js";
import { REVISION_OPTION, localHostMatcher, missingRevisionFiles } from "../status/index.js";
import {
  detectHostname,
  readLocalStates,
  type DetectedHostname,
  type LocalStates,
} from "../system/index.js";

export type CheckStatus = "ok" | "warn" | "fail";

export interface CheckResult {
  /** Stable identifier, e.g. `config`, `endpoint`, `irisd.substituter`. */
  id: string;
  /** What was checked, for people. */
  title: string;
  status: CheckStatus;
  /** What was found. */
  found: string;
  /** What to do, when not ok. */
  fix?: string;
}

export interface DoctorOptions extends CommandOptions {
  /** The irisd to check (`--irisd`, `$OGYGIA_IRISD_URL`, the default). */
  irisdUrl: URL;
  /** Runs `nix show-config --json`; tests may replace it. */
  nixConfig?: () => Promise<Record<string, unknown>>;
  /** The clock, for ages and skew. */
  now?: () => number;
}

/** The deadline of one irisd or Nix call: short, these are local. */
const LOCAL_DEADLINE_MS = 3000;

/** The backend section as doctor uses it. */
interface Selected {
  kind: BackendKind;
  label: string;
  config: OgygiaConfig;
  timeoutMs: number;
}

function result(
  id: string,
  title: string,
  status: CheckStatus,
  found: string,
  fix?: string,
): CheckResult {
  return fix === undefined || status === "ok"
    ? { id, title, status, found }
    : { id, title, status, found, fix };
}

/** Rejects after `ms` with a message naming what timed out. */
async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what} did not answer within ${ms / 1000} s`));
    }, ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Why a `fetch` failed, in words: fetch's own "fetch failed" hides the cause. */
function fetchFailure(err: unknown, timeoutMs: number): string {
  if (err instanceof DOMException && (err.name === "TimeoutError" || err.name === "AbortError")) {
    return `no answer within ${timeoutMs / 1000} s`;
  }
  if (err instanceof Error && err.cause instanceof Error) return err.cause.message;
  return errorMessage(err);
}

function age(ms: number): string {
  const s = Math.round(ms / 1000);
  if (Math.abs(s) < 90) return `${s} s`;
  if (Math.abs(s) < 5400) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

// ---------------------------------------------------------------- config

export interface ConfigOutcome {
  check: CheckResult;
  config: OgygiaConfig | undefined;
}

export async function checkConfig(options: DoctorOptions): Promise<ConfigOutcome> {
  const title = "configuration";
  const source = await configSource(options);
  let config: OgygiaConfig | undefined;
  const outcome = (status: CheckStatus, found: string, fix?: string): ConfigOutcome => ({
    config,
    check: result("config", title, status, found, fix),
  });
  try {
    config = await loadConfig(source);
  } catch (err) {
    const hint = err instanceof OgygiaError ? err.hint : undefined;
    return outcome(
      "fail",
      errorMessage(err),
      hint ?? `Run \`ogygia config check ${source.displayPath}\` and fix what it names.`,
    );
  }
  if (config === undefined && source.unreadable !== undefined) {
    return outcome(
      "fail",
      source.unreadable,
      `Fix the symbolic links under --root, or name the file with --config.`,
    );
  }
  if (config === undefined) {
    return outcome(
      "warn",
      `no configuration at ${source.displayPath}: local-only mode, no fleet`,
      `To see the fleet, write [ogygia.etcd] or [ogygia.zookeeper] in ${source.displayPath} ` +
        "(on NixOS: ogygia.etcd.endpoints or ogygia.zookeeper.enable).",
    );
  }
  const selected = configuredBackend(config);
  if (selected === undefined) {
    return outcome(
      "warn",
      `${config.path} parsed; it configures no fleet backend: local-only mode`,
      "Add an [ogygia.etcd] or [ogygia.zookeeper] section to see the fleet.",
    );
  }
  const { settings } = selected;
  return outcome(
    "ok",
    `${config.path} parsed; fleet in ${backendLabel(selected.entry.kind)} under ${settings.namespace} ` +
      `(${settings.endpoints.length} endpoint${settings.endpoints.length === 1 ? "" : "s"}, ` +
      `timeout ${settings.timeoutSeconds} s)`,
  );
}

function selectedBackend(config: OgygiaConfig | undefined): Selected | undefined {
  if (config === undefined) return undefined;
  const selected = configuredBackend(config);
  if (selected === undefined) return undefined;
  return {
    kind: selected.entry.kind,
    label: backendLabel(selected.entry.kind),
    config,
    timeoutMs: selected.settings.timeoutSeconds * 1000,
  };
}

// ---------------------------------------------------------------- endpoints

export interface EndpointOutcome {
  check: CheckResult;
  snapshot: FleetSnapshot | undefined;
  /** The server's clock minus ours, when the endpoint tells its time. */
  skewMs: number | undefined;
}

/** One endpoint alone: reachable, how fast, and whether the namespace can be read. */
async function checkEndpoint(
  selected: Selected,
  endpoint: string,
  now: () => number,
): Promise<EndpointOutcome> {
  const settings = selected.config[selected.kind];
  if (settings === undefined) throw new Error("checkEndpoint: backend not configured");
  const shown = redactUrl(endpoint);
  const id = `endpoint ${shown}`;
  const title = `${selected.label} endpoint ${shown}`;
  const single = { ...selected.config, [selected.kind]: { ...settings, endpoints: [endpoint] } };
  const started = now();
  const backend = await openFleetBackend(single);
  if (backend === undefined) throw new Error("checkEndpoint: no backend opened");
  try {
    const [snapshot, skewMs] = await Promise.all([
      within(selected.timeoutMs, shown, backend.readHosts()),
      selected.kind === "etcd" ? etcdSkew(endpoint, selected.timeoutMs, now) : undefined,
    ]);
    const ms = now() - started;
    const hosts = snapshot.hosts.size;
    if (hosts === 0) {
      return {
        snapshot,
        skewMs,
        check: result(
          id,
          title,
          "warn",
          `reachable in ${ms} ms, but no host has published under ${settings.namespace}`,
          "Check that namespace matches the publishers' (ogygia.etcd.namespace / " +
            "ogygia.zookeeper.namespace) and that `ogygia publish` runs on the hosts.",
        ),
      };
    }
    return {
      snapshot,
      skewMs,
      check: result(
        id,
        title,
        "ok",
        `reachable in ${ms} ms; ${hosts} host${hosts === 1 ? "" : "s"} under ${settings.namespace}`,
      ),
    };
  } catch (err) {
    return {
      snapshot: undefined,
      skewMs: undefined,
      check: result(
        id,
        title,
        "fail",
        errorMessage(err),
        `Check that ${selected.label} runs at ${shown} and that this host can reach it ` +
          "(firewall, address); a dead endpoint only slows the others, remove it from the configuration.",
      ),
    };
  } finally {
    void backend.close();
  }
}

/** etcd's clock from the `Date` header of its `/version`, against ours at the midpoint. */
async function etcdSkew(
  endpoint: string,
  timeoutMs: number,
  now: () => number,
): Promise<number | undefined> {
  try {
    const sent = now();
    const res = await fetch(new URL("/version", endpoint), {
      signal: AbortSignal.timeout(timeoutMs),
    });
    const received = now();
    await res.arrayBuffer();
    const date = res.headers.get("date");
    if (date === null) return undefined;
    const server = Date.parse(date);
    if (Number.isNaN(server)) return undefined;
    // The header has whole seconds: the server's clock is in [server, server + 1 s).
    return server + 500 - (sent + received) / 2;
  } catch {
    // Reachability is the endpoint check's to report.
    return undefined;
  }
}

// ---------------------------------------------------------------- this host

/** Fleet entries that are this host under another spelling (case, short or full name). */
function otherSpellings(hostname: string, hosts: Iterable<string>): string[] {
  const lower = hostname.toLowerCase();
  const short = lower.split(".")[0] ?? lower;
  const found: string[] = [];
  for (const host of hosts) {
    const h = host.toLowerCase();
    if (h === lower || h === short || (h.split(".")[0] ?? h) === short) found.push(host);
  }
  return found;
}

function checkHostname(
  detected: DetectedHostname,
  config: OgygiaConfig | undefined,
  snapshot: FleetSnapshot | undefined,
): { check: CheckResult; entry: string | undefined } {
  const title = "this host's name";
  const name = `${detected.hostname} (from ${detected.source})`;
  if (snapshot === undefined) {
    return { entry: undefined, check: result("hostname", title, "ok", name) };
  }
  const isLocal = localHostMatcher(detected.hostname, config?.domain);
  const hosts = [...snapshot.hosts.keys()];
  const entry = hosts.find(isLocal);
  if (entry !== undefined) {
    return {
      entry,
      check: result("hostname", title, "ok", `${name}; the fleet has it as ${entry}`),
    };
  }
  const others = otherSpellings(detected.hostname, hosts);
  if (others.length > 0) {
    return {
      entry: undefined,
      check: result(
        "hostname",
        title,
        "warn",
        `${name}; the fleet has no entry for it, but has ${others.join(", ")}`,
        `status and publish must agree on the name: set OGYGIA_HOSTNAME=${others[0] ?? ""} ` +
          "(or fix `hostname -f` / networking.domain), or the publisher's name.",
      ),
    };
  }
  return {
    entry: undefined,
    check: result(
      "hostname",
      title,
      "warn",
      `${name}; the fleet has no entry for it`,
      "Run the publisher on this host (NixOS: ogygia.publish.enable = true).",
    ),
  };
}

function checkRevisions(states: LocalStates): CheckResult {
  const title = "build-revision files";
  const shown = (["current", "booted", "nextboot"] as const)
    .map((s) => `${s} ${states[s].revision?.slice(0, 12) ?? "unknown"}`)
    .join(", ");
  if (missingRevisionFiles(states) !== undefined) {
    return result(
      "revisions",
      title,
      "warn",
      `no state has a build-revision file (like ${states.current.path})`,
      `Build this host with the NixOS option ${REVISION_OPTION} (on by default with ogygia.enable).`,
    );
  }
  const problems = (["current", "booted", "nextboot"] as const).flatMap(
    (s) => states[s].problem ?? [],
  );
  if (problems.length > 0) {
    return result(
      "revisions",
      title,
      "warn",
      `${shown}; ${problems.join("; ")}`,
      "Fix the file's permissions or contents (it is written by the NixOS module).",
    );
  }
  return result("revisions", title, "ok", shown);
}

function checkPublisher(
  selected: Selected,
  snapshot: FleetSnapshot,
  entry: string | undefined,
  now: number,
): CheckResult {
  const title = "this host's publisher";
  const fix = "Start it: systemctl start ogygia-publish (NixOS: ogygia.publish.enable = true).";
  if (entry === undefined) {
    return result("publisher", title, "warn", "this host has not published to the fleet", fix);
  }
  const values = snapshot.hosts.get(entry);
  const text = (field: "alive" | "updated_at"): string | undefined => {
    const raw = values?.get(field);
    return raw === undefined ? undefined : Buffer.from(raw).toString("utf8");
  };
  const updated = text("updated_at");
  const updatedAt = updated === undefined ? Number.NaN : Date.parse(updated);
  const ago = Number.isNaN(updatedAt) ? "never" : `${age(now - updatedAt)} ago`;
  if (text("alive") === undefined) {
    return result(
      "publisher",
      title,
      "fail",
      `${entry} has no alive key (the publisher is not running or lost its ` +
        `${selected.kind === "etcd" ? "lease" : "session"}); updated_at ${ago}`,
      fix,
    );
  }
  const staleAfter = selected.config.publish.resyncIntervalSeconds * 2 * 1000;
  if (!Number.isNaN(updatedAt) && now - updatedAt > staleAfter) {
    return result(
      "publisher",
      title,
      "warn",
      `${entry} is alive but updated_at is ${ago} (resyncs every ` +
        `${selected.config.publish.resyncIntervalSeconds} s)`,
      "Look at the publisher's log: journalctl -u ogygia-publish.",
    );
  }
  return result("publisher", title, "ok", `${entry} is alive; updated_at ${ago}`);
}

function checkClock(selected: Selected, skews: readonly (number | undefined)[]): CheckResult {
  const title = "clock skew";
  const known = skews.filter((s): s is number => s !== undefined);
  if (known.length === 0) {
    return result(
      "clock",
      title,
      "ok",
      selected.kind === "etcd"
        ? "not measured (no endpoint answered with its time)"
        : `not measured (${selected.label} tells readers no time)`,
    );
  }
  const worst = known.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a));
  const found = `${selected.label} is ${Math.abs(worst) < 1000 ? "within a second of" : `${age(Math.abs(worst))} ${worst > 0 ? "ahead of" : "behind"}`} this host`;
  if (Math.abs(worst) > 30_000) {
    return result("clock", title, "fail", found, "Run NTP on this host (services.timesyncd).");
  }
  if (Math.abs(worst) > 2_000) {
    return result("clock", title, "warn", found, "Run NTP on this host (services.timesyncd).");
  }
  return result("clock", title, "ok", found);
}

// ---------------------------------------------------------------- irisd and Nix

/** `nix show-config --json`: name -> { value }. */
export function nixShowConfig(): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(
      "nix",
      ["--extra-experimental-features", "nix-command", "show-config", "--json"],
      { timeout: LOCAL_DEADLINE_MS, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`nix show-config failed: ${stderr.trim() || err.message}`));
          return;
        }
        try {
          resolve(JSON.parse(stdout) as Record<string, unknown>);
        } catch (parseErr) {
          reject(parseErr instanceof Error ? parseErr : new Error(String(parseErr)));
        }
      },
    );
  });
}

function settingList(config: Record<string, unknown>, name: string): string[] {
  const entry = config[name];
  const value =
    typeof entry === "object" && entry !== null && "value" in entry ? entry.value : undefined;
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  if (typeof value === "string") return value.split(/\s+/).filter((v) => v !== "");
  return [];
}

const sameUrl = (a: string, b: string): boolean => a.replace(/\/+$/, "") === b.replace(/\/+$/, "");

async function checkIrisd(options: DoctorOptions & DoctorExtras): Promise<CheckResult[]> {
  const base = options.irisdUrl.href.replace(/\/+$/, "");
  const shown = redactUrl(base);
  const reach = (async (): Promise<CheckResult> => {
    const title = `ogygia-irisd at ${shown}`;
    try {
      const res = await fetch(`${base}/nix-cache-info`, {
        signal: AbortSignal.timeout(LOCAL_DEADLINE_MS),
      });
      const body = await res.text();
      if (res.status !== 200 || !/^StoreDir: /m.test(body)) {
        return result(
          "irisd",
          title,
          "fail",
          `/nix-cache-info answered ${res.status}, not a binary cache`,
          "Check that the URL names ogygia-irisd ($OGYGIA_IRISD_URL or --irisd).",
        );
      }
      const fields = body
        .trim()
        .split("\n")
        .map((l) => l.trim())
        .join(", ");
      return result("irisd", title, "ok", `answers: ${fields}`);
    } catch (err) {
      return result(
        "irisd",
        title,
        "warn",
        `not reachable: ${fetchFailure(err, LOCAL_DEADLINE_MS)}`,
        "Start it (NixOS: ogygia.irisd.enable, or systemctl start ogygia-irisd), or point " +
          "$OGYGIA_IRISD_URL / --irisd at it. Without it, the fleet does not share builds.",
      );
    }
  })();
  const nix = (async (): Promise<CheckResult> => {
    const title = "Nix uses ogygia-irisd";
    let config: Record<string, unknown>;
    try {
      config = await within(
        LOCAL_DEADLINE_MS,
        "nix show-config",
        (options.nixConfig ?? nixShowConfig)(),
      );
    } catch (err) {
      return result(
        "irisd.substituter",
        title,
        "warn",
        `could not read Nix's configuration: ${errorMessage(err)}`,
        "Check that `nix show-config` works on this host.",
      );
    }
    const substituters = [
      ...settingList(config, "substituters"),
      ...settingList(config, "extra-substituters"),
    ];
    if (!substituters.some((s) => sameUrl(s, base))) {
      return result(
        "irisd.substituter",
        title,
        // Only a wrong when there is an irisd to use.
        (await reach).status === "ok" ? "fail" : "warn",
        `${shown} is not among Nix's substituters (${substituters.join(" ") || "none"})`,
        `Add it: ogygia.irisd.configureNixDaemon = true on NixOS (or substituters = ${shown} in nix.conf).`,
      );
    }
    const trusted = new Set([
      ...settingList(config, "trusted-public-keys"),
      ...settingList(config, "extra-trusted-public-keys"),
    ]);
    const irisdKeys = options.irisdTrustedKeys ?? [];
    const untrusted = irisdKeys.filter((k) => !trusted.has(k));
    if (untrusted.length > 0) {
      return result(
        "irisd.substituter",
        title,
        "fail",
        `${shown} is a substituter, but Nix does not trust the fleet's key${untrusted.length === 1 ? "" : "s"} ` +
          untrusted.map((k) => k.split(":")[0] ?? k).join(", "),
        "ogygia.irisd.configureNixDaemon = true on NixOS adds them (or trusted-public-keys in nix.conf).",
      );
    }
    return result(
      "irisd.substituter",
      title,
      "ok",
      irisdKeys.length === 0
        ? `${shown} is a substituter`
        : `${shown} is a substituter and Nix trusts the fleet's ${irisdKeys.length === 1 ? "key" : "keys"}`,
    );
  })();
  const peers = (options.irisdPeers ?? []).map(async (peer): Promise<CheckResult> => {
    const peerShown = redactUrl(peer);
    const title = `irisd peer ${peerShown}`;
    try {
      const res = await fetch(`${peer.replace(/\/+$/, "")}/nix-cache-info`, {
        signal: AbortSignal.timeout(LOCAL_DEADLINE_MS),
      });
      await res.arrayBuffer();
      if (res.status !== 200) {
        return result(
          `peer ${peerShown}`,
          title,
          "warn",
          `answered ${res.status}`,
          "Check the peer's ogygia-irisd.",
        );
      }
      return result(`peer ${peerShown}`, title, "ok", "answers");
    } catch (err) {
      return result(
        `peer ${peerShown}`,
        title,
        "warn",
        `not reachable: ${fetchFailure(err, LOCAL_DEADLINE_MS)}`,
        "Check that the peer runs ogygia-irisd and that the overlay network reaches it.",
      );
    }
  });
  return Promise.all([reach, nix, ...peers]);
}

// ---------------------------------------------------------------- all of them

export interface DoctorExtras {
  /** The keys irisd trusts (`[trust] trusted_keys`), which Nix must trust too. */
  irisdTrustedKeys?: string[];
  /** irisd's `[peers] urls`. */
  irisdPeers?: string[];
}

/** Runs every check; the results in a fixed order. */
export async function runChecks(options: DoctorOptions & DoctorExtras): Promise<CheckResult[]> {
  const now = options.now ?? Date.now;
  const detecting =
    options.hostname ?? detectHostname({ env: options.env, ...options.hostnameEnvironment });
  const irisd = checkIrisd(options);
  const [{ check: configCheck, config }, states, detected] = await Promise.all([
    checkConfig(options),
    readLocalStates(options.root),
    detecting,
  ]);
  const selected = selectedBackend(config);
  const settings = selected?.config[selected.kind];
  const endpoints =
    selected && settings
      ? await Promise.all(settings.endpoints.map((e) => checkEndpoint(selected, e, now)))
      : [];
  const snapshot = endpoints.find((e) => e.snapshot !== undefined)?.snapshot;
  const host = checkHostname(detected, config, snapshot);
  const checks: CheckResult[] = [configCheck, ...endpoints.map((e) => e.check), host.check];
  checks.push(checkRevisions(states));
  if (selected && snapshot) {
    checks.push(checkPublisher(selected, snapshot, host.entry, now()));
    checks.push(
      checkClock(
        selected,
        endpoints.map((e) => e.skewMs),
      ),
    );
  }
  checks.push(...(await irisd));
  return checks;
}
