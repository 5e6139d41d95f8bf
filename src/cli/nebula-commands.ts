/**
 * The `ogygia nebula` commands. Each loads `src/nebula` on first use.
 */

import { usageError, type CommandSpec } from "./args.js";
import { writeLines } from "./output.js";
import { CONFIG_OPTION, JSON_OPTION, printJson, text } from "./shared.js";

/** JSON with `--json`, else `lines` as they are (the table escapes its own cells). */
async function print(json: boolean, value: unknown, lines: string[]): Promise<void> {
  if (json) return printJson(value);
  writeLines(lines.map((line) => ({ stream: "stdout", text: line })));
}

const CA_INIT: CommandSpec = {
  path: ["nebula", "ca", "init"],
  summary: "make the mesh's certificate authority (on the operator's machine, never a host)",
  description:
    "Make a Nebula CA with nebula-cert: ca.crt (shared with every host) and ca.key\n" +
    "(written 0600; it signs every host's certificate, keep it off the hosts).\n" +
    "An existing CA is never overwritten.",
  options: {
    name: { type: "string", valueName: "name", description: "the CA's name (required)" },
    duration: {
      type: "string",
      valueName: "d",
      description: "how long the CA is valid, like 8760h (default: nebula-cert's, one year)",
    },
    out: {
      type: "string",
      valueName: "dir",
      description: "where to write ca.crt and ca.key (default: [ogygia.nebula] ca_dir, nebula-ca)",
    },
    config: CONFIG_OPTION,
    json: JSON_OPTION,
  },
  examples: ["ogygia nebula ca init --name example-mesh --duration 43800h"],
  async run({ values }) {
    const name = text(values.name);
    if (name === undefined || name === "") throw usageError("--name is required", CA_INIT);
    const [{ nebulaCaInit }, { loadContext }] = await Promise.all([
      import("../nebula/index.js"),
      import("../command/index.js"),
    ]);
    const { config } = await loadContext({
      root: "/",
      configFile: text(values.config),
      env: process.env,
    });
    const result = await nebulaCaInit({
      name,
      duration: text(values.duration),
      dir: text(values.out) ?? config?.nebula?.caDir ?? "nebula-ca",
    });
    await print(values.json === true, result, [
      `CA ${result.facts.name} valid until ${result.facts.notAfter}`,
      `certificate: ${result.crt}`,
      `key:         ${result.key} (0600: keep it on this machine)`,
      `fingerprint: ${result.facts.fingerprint}`,
    ]);
    return 0;
  },
};

const KEYGEN: CommandSpec = {
  path: ["nebula", "keygen"],
  summary: "make this host's Nebula key pair (kept if it exists) and print its public key",
  description:
    "Make this host's key pair with nebula-cert in DIR: host.key (0600, never printed or\n" +
    "sent) and host.pub, and print the public key, to be signed with `ogygia nebula sign`.\n" +
    "An existing pair is kept: running it again prints the same public key.",
  options: {
    dir: {
      type: "string",
      valueName: "dir",
      description: "where the pair lives (default: /var/lib/ogygia/nebula)",
    },
    json: JSON_OPTION,
  },
  examples: ["ogygia nebula keygen > web01.pub"],
  async run({ values }) {
    const { nebulaKeygen, DEFAULT_KEY_DIR } = await import("../nebula/index.js");
    const result = await nebulaKeygen({ dir: text(values.dir) ?? DEFAULT_KEY_DIR });
    await print(
      values.json === true,
      { pub: result.pub, publicKey: result.publicKey, created: result.created },
      [result.publicKey.trimEnd()],
    );
    return 0;
  },
};

const SIGN: CommandSpec = {
  path: ["nebula", "sign"],
  summary: "sign a host's public key, with an address handed out through the registry",
  description:
    "Sign HOST's public key with the CA. With --ip auto (the default) the host keeps the\n" +
    "address the registry has for it, or gets the next free one of [ogygia.nebula] subnet,\n" +
    "taken with compare-and-swap so that two operators never hand out one address twice.\n" +
    "The certificate is written to [ogygia.nebula] cert_dir as HOST-<hash>.crt.",
  options: {
    pub: { type: "string", valueName: "file", description: "the host's public key (required)" },
    ip: {
      type: "string",
      valueName: "addr",
      description: "auto, or an address of the subnet like 10.42.0.7/16 (default: auto)",
    },
    groups: { type: "string", valueName: "a,b", description: "comma-separated Nebula groups" },
    duration: {
      type: "string",
      valueName: "d",
      description: "how long the certificate is valid, like 8760h (default: until the CA expires)",
    },
    ca: { type: "string", valueName: "dir", description: "the CA's folder (default: ca_dir)" },
    out: { type: "string", valueName: "dir", description: "where to write (default: cert_dir)" },
    config: CONFIG_OPTION,
    json: JSON_OPTION,
  },
  positionals: [{ name: "host", description: "the host's name, as it publishes" }],
  environment: [["OGYGIA_CONFIG", "configuration file to use instead of the default"]],
  examples: [
    "ogygia nebula sign web01 --pub web01.pub",
    "ogygia nebula sign lighthouse1 --pub lh.pub --ip 10.42.0.1/16 --groups lighthouse",
  ],
  async run({ values, positionals }) {
    const pub = text(values.pub);
    if (pub === undefined) throw usageError("--pub is required", SIGN);
    const [{ nebulaSign }, { loadContext }] = await Promise.all([
      import("../nebula/index.js"),
      import("../command/index.js"),
    ]);
    const { config } = await loadContext({
      root: "/",
      configFile: text(values.config),
      env: process.env,
    });
    const groups = (text(values.groups) ?? "")
      .split(",")
      .map((g) => g.trim())
      .filter((g) => g !== "");
    const result = await nebulaSign({
      host: positionals[0] ?? "",
      pub,
      ip: text(values.ip) ?? "auto",
      groups,
      duration: text(values.duration),
      config,
      caDir: text(values.ca),
      outDir: text(values.out),
    });
    await print(values.json === true, result, [
      `${result.host}: ${result.address}${result.kept ? " (kept)" : " (new)"}` +
        (result.facts.groups.length > 0 ? `, groups ${result.facts.groups.join(",")}` : "") +
        `, valid until ${result.facts.notAfter}`,
      `certificate: ${result.certificate}`,
    ]);
    return 0;
  },
};

const REKEY: CommandSpec = {
  path: ["nebula", "rekey"],
  summary: "re-sign the certificates nearing expiry, with the same address and groups",
  description:
    "Renew the certificates of [ogygia.nebula] cert_dir that have less than --within left\n" +
    "(default: less than a third of their lifetime), only the newest per host: same name,\n" +
    "address and groups, the same lifetime unless --duration says otherwise, and the\n" +
    "public key taken from the certificate itself (no host key needed). The old file is\n" +
    "removed once the new one is written. --dry-run shows what would change.",
  options: {
    "dry-run": { type: "boolean", description: "show what would be renewed; change nothing" },
    within: {
      type: "string",
      valueName: "d",
      description:
        "renew those with less than this left, like 720h (default: a third of the lifetime)",
    },
    duration: {
      type: "string",
      valueName: "d",
      description: "lifetime of the new certificates (default: that of the old ones)",
    },
    ca: { type: "string", valueName: "dir", description: "the CA's folder (default: ca_dir)" },
    certs: {
      type: "string",
      valueName: "dir",
      description: "the certificate folder (default: cert_dir)",
    },
    config: CONFIG_OPTION,
    json: JSON_OPTION,
  },
  environment: [["OGYGIA_CONFIG", "configuration file to use instead of the default"]],
  examples: ["ogygia nebula rekey --dry-run", "ogygia nebula rekey --within 720h"],
  async run({ values }) {
    const [{ nebulaRekey, parseGoDuration, formatDuration }, { loadContext }] = await Promise.all([
      import("../nebula/index.js"),
      import("../command/index.js"),
    ]);
    const within = text(values.within);
    const withinMs = within === undefined ? undefined : parseGoDuration(within);
    if (within !== undefined && withinMs === undefined) {
      throw usageError(`--within ${JSON.stringify(within)} is not a duration like 720h`, REKEY);
    }
    const { config } = await loadContext({
      root: "/",
      configFile: text(values.config),
      env: process.env,
    });
    const dryRun = values["dry-run"] === true;
    const result = await nebulaRekey({
      config,
      caDir: text(values.ca),
      certDir: text(values.certs),
      withinMs,
      duration: text(values.duration),
      dryRun,
      now: Date.now(),
    });
    const lines: string[] = [];
    for (const change of result.changes) {
      const left =
        change.remainingMs <= 0
          ? `expired ${formatDuration(change.remainingMs)} ago`
          : `${formatDuration(change.remainingMs)} left`;
      lines.push(
        `${change.host} ${change.address ?? "(no address)"}: ${left}` +
          (change.certificate === null
            ? dryRun
              ? " — would be renewed"
              : " — has no address, not renewed"
            : ` — renewed until ${change.notAfter ?? "?"}`),
      );
      if (change.certificate !== null) lines.push(`  ${change.old} -> ${change.certificate}`);
    }
    if (result.changes.length === 0) lines.push(`nothing to renew in ${result.certDir}`);
    for (const skip of result.skipped) lines.push(`skipped ${skip.file}: ${skip.reason}`);
    await print(values.json === true, { dryRun, ...result }, lines);
    return 0;
  },
};

const STATUS: CommandSpec = {
  path: ["nebula", "status"],
  summary: "the fleet's Nebula certificates: addresses, groups, time left, problems",
  description:
    "Read the certificate facts every host publishes (`ogygia publish` with [ogygia.nebula]\n" +
    "cert_file) and show each host's address, groups and time left. A certificate is a\n" +
    "warning with under a third of its lifetime left, critical when expired, signed by a CA\n" +
    "that [ogygia.nebula] ca_files (or ca_dir's ca.crt) does not name, or when its address\n" +
    "is also another host's. Exits 1 when any certificate is critical, else 0.",
  options: {
    config: CONFIG_OPTION,
    json: JSON_OPTION,
  },
  environment: [["OGYGIA_CONFIG", "configuration file to use instead of the default"]],
  examples: ["ogygia nebula status", "ogygia nebula status --json"],
  async run({ values }) {
    const [{ nebulaStatus, formatDuration }, { loadContext, formatTable }] = await Promise.all([
      import("../nebula/index.js"),
      import("../command/index.js"),
    ]);
    const { config } = await loadContext({
      root: "/",
      configFile: text(values.config),
      env: process.env,
    });
    const result = await nebulaStatus({ config, now: Date.now() });
    const rows: string[][] = [["HOST", "ADDRESS", "GROUPS", "EXPIRES", "STATE"]];
    for (const cert of result.certificates) {
      const left =
        cert.remainingMs === null
          ? "?"
          : cert.remainingMs <= 0
            ? `expired ${formatDuration(cert.remainingMs)} ago`
            : `in ${formatDuration(cert.remainingMs)}`;
      rows.push([
        cert.host + (result.alive.includes(cert.host) ? "" : " (offline)"),
        cert.address ?? "-",
        cert.groups.length > 0 ? cert.groups.join(",") : "-",
        left,
        cert.level + (cert.reasons.length > 0 ? `: ${cert.reasons.join("; ")}` : ""),
      ]);
    }
    const lines =
      result.certificates.length === 0
        ? [`no host publishes a Nebula certificate under ${result.namespace}`]
        : formatTable(rows);
    for (const conflict of result.conflicts) {
      lines.push(`address conflict: ${conflict.address} is given to ${conflict.hosts.join(", ")}`);
    }
    if (!result.caChecked) {
      lines.push("issuers not checked: no CA known here (set [ogygia.nebula] ca_files)");
    }
    await print(values.json === true, result, lines);
    return result.certificates.some((c) => c.level === "critical") ? 1 : 0;
  },
};

export const NEBULA_COMMANDS: readonly CommandSpec[] = [CA_INIT, KEYGEN, SIGN, STATUS, REKEY];
