/**
 * The `ogygia` CLI configuration (`config.toml`): locating, parsing and
 * validating it. A missing default file means local-only mode; anything else
 * that is wrong is an error naming the file and the key or line.
 */

import { readFileSync, statSync, type Stats } from "node:fs";
import path from "node:path";

import { OgygiaError, checkHttpUrl, hasErrorCode } from "../core/index.js";
import { BACKEND_NAMES, type BackendKind, type FleetCredentials } from "../fleet/index.js";
import { DEFAULT_IRISD_URL } from "../iris/index.js";
import {
  boolean,
  integer,
  invalidAt,
  locateKeys,
  number,
  optional,
  parseTomlText,
  string,
  stringList,
  table,
  type Field,
  type SchemaContext,
} from "./schema.js";

export const DEFAULT_NAMESPACE = "/nixos/versions";
export const DEFAULT_TIMEOUT_SECONDS = 10;
export const DEFAULT_LEASE_TTL_SECONDS = 10;
export const DEFAULT_RESYNC_INTERVAL_SECONDS = 300;

function checkNamespace(value: string): string | undefined {
  if (!value.startsWith("/")) return `must start with "/", like "${DEFAULT_NAMESPACE}"`;
  if (/^\/+$/.test(value)) return `must name a prefix below the root, like "${DEFAULT_NAMESPACE}"`;
  if (value.includes("//")) return 'must not contain an empty segment ("//")';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return "must not contain control characters";
  return undefined;
}

/** Parses `host:port` or `[v6]:port`; undefined when malformed. */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$/.exec(value);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1] ?? match[2] ?? "", port };
}

const ENDPOINT_CHECKS = {
  url: (example: string) => (value: string) => checkHttpUrl(value, { example, originOnly: true }),
  "host:port": (example: string) => (value: string) =>
    parseHostPort(value)
      ? undefined
      : `${JSON.stringify(value)} must be "host:port", like "${example}"`,
};

const timeoutField = integer({
  description: "Seconds to wait for the backend before falling back to local data.",
  default: DEFAULT_TIMEOUT_SECONDS,
  min: 1,
  max: 3600,
});

const namespaceField = string({
  description: "Key prefix under which hosts publish `<host>/{current,booted,nextboot}`.",
  default: DEFAULT_NAMESPACE,
  check: checkNamespace,
});

/** A backend's section as written in the file. */
interface RawBackend extends RawCredentials {
  endpoints: string[];
  namespace: string;
  timeout_seconds: number;
}

// ---------------------------------------------------------------- fleet credentials
// TLS and authentication of the fleet backends: file names only, the
// secrets are read from the files when a client is made (src/fleet/credentials.ts).

interface RawCredentials {
  ca_file?: string | undefined;
  cert_file?: string | undefined;
  key_file?: string | undefined;
  username?: string | undefined;
  password_file?: string | undefined;
}

const RELATIVE_FILES =
  " A relative name is looked up in systemd's credentials folder ($CREDENTIALS_DIRECTORY, " +
  "filled by LoadCredential) when set, else next to this file.";

function fileField(description: string): Field<string | undefined> {
  return optional(
    string({
      description: description + RELATIVE_FILES,
      check: (v) => (v.trim() === "" ? "must name a file" : undefined),
    }),
  );
}

const usernameField = optional(
  string({
    description: "The user to authenticate as (with password_file).",
    check: (v) =>
      /^[A-Za-z0-9._@-]{1,128}$/.test(v)
        ? undefined
        : `${JSON.stringify(v)} must be 1 to 128 letters, digits, ".", "_", "@" or "-"`,
  }),
);

const passwordFileField = fileField(
  "The file holding the user's password on its first line (never the password itself).",
);

/** The credential keys each backend's section takes beside endpoints, namespace and timeout. */
const CREDENTIAL_FIELDS: Record<BackendKind, Record<string, Field<string | undefined>>> = {
  etcd: {
    ca_file: fileField("PEM CA bundle that the https endpoints' certificates must chain to."),
    cert_file: fileField("PEM client certificate for https endpoints (with key_file)."),
    key_file: fileField("PEM private key of cert_file."),
    username: usernameField,
    password_file: passwordFileField,
  },
  zookeeper: {
    username: optional(
      string({
        description:
          "The digest identity to authenticate as (with password_file); the nodes this host " +
          "creates are then readable by all and writable by it and the fleet's admin.",
        check: (v) =>
          /^[A-Za-z0-9._@-]{1,128}$/.test(v)
            ? undefined
            : `${JSON.stringify(v)} must be 1 to 128 letters, digits, ".", "_", "@" or "-"`,
      }),
    ),
    password_file: passwordFileField,
  },
};

/** Keys that need each other, and TLS files that need https endpoints. */
function checkCredentials(kind: BackendKind, raw: RawBackend, ctx: SchemaContext): void {
  const at = (key: string): string[] => ["ogygia", kind, key];
  if (raw.username !== undefined && raw.password_file === undefined) {
    throw invalidAt(at("username"), ctx, "needs password_file, the file holding its password");
  }
  if (raw.password_file !== undefined && raw.username === undefined) {
    throw invalidAt(at("password_file"), ctx, "needs username, the user it is the password of");
  }
  if ((raw.cert_file === undefined) !== (raw.key_file === undefined)) {
    const [set, missing] =
      raw.cert_file === undefined ? ["key_file", "cert_file"] : ["cert_file", "key_file"];
    throw invalidAt(at(set), ctx, `needs ${missing} too`);
  }
  for (const key of ["ca_file", "cert_file"] as const) {
    if (raw[key] !== undefined && !raw.endpoints.some((e) => e.startsWith("https://"))) {
      throw invalidAt(
        at(key),
        ctx,
        "is set but no endpoint is https://; TLS needs https endpoints",
      );
    }
  }
}

function toCredentials(raw: RawBackend, file: string): FleetCredentials | undefined {
  const credentials: FleetCredentials = {
    caFile: raw.ca_file,
    certFile: raw.cert_file,
    keyFile: raw.key_file,
    username: raw.username,
    passwordFile: raw.password_file,
  };
  if (Object.values(credentials).every((v) => v === undefined)) return undefined;
  return { ...credentials, baseDir: path.dirname(path.resolve(file)) };
}

// ---------------------------------------------------------------- end of fleet credentials

/** `[ogygia.<kind>]` for every registered backend, the first preferred over the others. */
/**
 * The schema is built on first use (`configSchema()`), not when the module
 * loads: a local-mode start has no file to parse, and building it cost every
 * start of the CLI ~1 ms.
 */
const backendSections = (): Record<BackendKind, Field<RawBackend | undefined>> =>
  Object.fromEntries(
    BACKEND_NAMES.map((backend, index) => {
      const others = BACKEND_NAMES.filter((b) => b !== backend).map((b) => b.label);
      const preferred =
        index === 0 && others.length > 0 ? ` Preferred over ${others.join(", ")}.` : "";
      const section: Field<RawBackend | undefined> = optional(
        table({
          description: `Read (and publish) fleet state in ${backend.label}.${preferred}`,
          fields: {
            endpoints: stringList({
              description: backend.endpoints.description,
              minItems: 1,
              check: ENDPOINT_CHECKS[backend.endpoints.form](backend.endpoints.example),
            }),
            namespace: namespaceField,
            timeout_seconds: timeoutField,
            ...CREDENTIAL_FIELDS[backend.kind],
          },
        }),
      );
      return [backend.kind, section];
    }),
  ) as Record<BackendKind, Field<RawBackend | undefined>>;

// --- [ogygia.builder]: this host offers remote builds (src/builders) ---

/** Nix system types and feature names: no spaces or commas (the machines file's separators). */
const MACHINE_WORD = /^[A-Za-z0-9_.+-]{1,64}$/;
const checkWord = (v: string): string | undefined =>
  MACHINE_WORD.test(v) ? undefined : `${JSON.stringify(v)} must be letters, digits, "_.+-"`;

const builderSection = () =>
  optional(
    table({
      description:
        "This host offers remote builds: the publisher publishes its builder entry under its lease.",
      fields: {
        user: string({
          description: "The SSH user Nix connects as.",
          default: "nix-builder",
          check: (v) =>
            /^[a-z_][a-z0-9_-]{0,31}$/.test(v)
              ? undefined
              : `${JSON.stringify(v)} is not a user name`,
        }),
        address: optional(
          string({
            description: "The address builders connect to (default: this host's name).",
            check: (v) =>
              /^[A-Za-z0-9._:-]{1,253}$/.test(v)
                ? undefined
                : `${JSON.stringify(v)} is not an address`,
          }),
        ),
        protocol: string({
          description: 'How Nix talks to the builder: "ssh-ng" (nix-daemon --stdio) or "ssh".',
          default: "ssh-ng",
          check: (v) => (v === "ssh-ng" || v === "ssh" ? undefined : 'must be "ssh-ng" or "ssh"'),
        }),
        systems: optional(
          stringList({
            description: "System types built (default: Nix's `system` and `extra-platforms`).",
            minItems: 1,
            check: checkWord,
          }),
        ),
        max_jobs: optional(
          integer({ description: "Builds at once (default: the cores).", min: 1, max: 4096 }),
        ),
        speed_factor: number({
          description: "Relative speed; faster builders are preferred.",
          default: 1,
          min: 0.001,
          max: 1_000_000,
        }),
        supported_features: stringList({
          description: "System features this builder supports (kvm, big-parallel, ...).",
          default: [],
          check: checkWord,
        }),
        mandatory_features: stringList({
          description: "Features a derivation must ask for to be built here.",
          default: [],
          check: checkWord,
        }),
        host_key_file: string({
          description: "This host's SSH public host key, published so clients can check it.",
          default: "/etc/ssh/ssh_host_ed25519_key.pub",
        }),
      },
    }),
  );

/** `[ogygia.builder]`, defaults filled in where they need no probing of the host. */
export interface BuilderConfig {
  user: string;
  address: string | undefined;
  protocol: "ssh-ng" | "ssh";
  systems: string[] | undefined;
  maxJobs: number | undefined;
  speedFactor: number;
  supportedFeatures: string[];
  mandatoryFeatures: string[];
  hostKeyFile: string;
}

// --- end [ogygia.builder] ---

// --- [ogygia.update]: the host's update agent, `ogygia update` (src/rollout) ---

const updateSection = () =>
  table({
    description: "Settings of the `ogygia update` agent, which applies rollouts to this host.",
    fields: {
      state_dir: string({
        description:
          "Where the agent keeps its on-disk record of an update in progress (under --root).",
        default: "/var/lib/ogygia/update",
        check: (v) => (v.startsWith("/") ? undefined : "must be an absolute path"),
      }),
      substituters: stringList({
        description:
          "Binary caches system paths are realised from, in order (the local ogygia-irisd first).",
        default: [DEFAULT_IRISD_URL],
      }),
      trusted_public_keys: stringList({
        description:
          "Keys a system path must be signed by (`name:base64`); empty: Nix's own trusted-public-keys.",
        default: [],
      }),
      probes: stringList({
        description:
          "Health probes: shell commands that must exit 0 after an activation ($OGYGIA_ROOT is the root).",
        default: [],
      }),
      http_probes: stringList({
        description: "Health probes: URLs that must answer a 2xx status to a GET.",
        default: [],
        check: (v) => checkHttpUrl(v, { example: "http://127.0.0.1:8080/health" }),
      }),
      check_units: boolean({
        description: "Count failed systemd units (`systemctl list-units --failed`) as unhealthy.",
        default: true,
      }),
      health_deadline_seconds: integer({
        description:
          "Seconds after an activation within which the host must be healthy, else it rolls back.",
        default: 120,
        min: 1,
        max: 86_400,
      }),
      activation_timeout_seconds: integer({
        description: "Seconds a realisation or a switch-to-configuration may take.",
        default: 600,
        min: 1,
        max: 86_400,
      }),
      poll_interval_seconds: number({
        description:
          "Seconds between looks at the rollout plan (changes of hosts wake it at once).",
        default: 1,
        min: 0.05,
        max: 3600,
      }),
      reboot: string({
        description:
          'When a release changes the kernel, initrd or kernel modules: "never" (activate it now, ' +
          'the reboot is left to the operator), "always" (boot into it at once) or "window" (boot ' +
          "into it within reboot_window, waiting for it).",
        default: "never",
        check: (v) =>
          ["never", "always", "window"].includes(v)
            ? undefined
            : 'must be "never", "always" or "window"',
      }),
      reboot_window: string({
        description:
          'The local-time window of reboot = "window", as "HH:MM-HH:MM" (it may span midnight).',
        default: "02:00-04:00",
        check: (v) => (parseRebootWindow(v) === null ? 'must be like "02:00-04:00"' : undefined),
      }),
      reboot_command: stringList({
        description: "The command that reboots the host (program and arguments).",
        default: ["systemctl", "reboot"],
        minItems: 1,
      }),
    },
  });

/** A reboot window "HH:MM-HH:MM" as minutes of the day [start, end), or null when malformed. */
export function parseRebootWindow(text: string): { start: number; end: number } | null {
  const m = /^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$/.exec(text);
  if (!m) return null;
  const start = Number(m[1]) * 60 + Number(m[2]);
  const end = Number(m[3]) * 60 + Number(m[4]);
  if (end > 24 * 60 || start === end) return null;
  return { start, end };
}

/** `[ogygia.update]`, defaults filled in. */
export interface UpdateConfig {
  stateDir: string;
  substituters: string[];
  trustedPublicKeys: string[];
  probes: string[];
  httpProbes: string[];
  checkUnits: boolean;
  healthDeadlineSeconds: number;
  activationTimeoutSeconds: number;
  pollIntervalSeconds: number;
  reboot: "never" | "always" | "window";
  rebootWindow: string;
  rebootCommand: string[];
}

// --- end [ogygia.update] ---

let builtSchema: ReturnType<typeof buildConfigSchema> | undefined;

/** The configuration file's schema, built on first use. */
function configSchema(): ReturnType<typeof buildConfigSchema> {
  builtSchema ??= buildConfigSchema();
  return builtSchema;
}

function buildConfigSchema() {
  return table({
    description: "The ogygia configuration file.",
    fields: {
      ogygia: table({
        description: "Settings shared by every ogygia command.",
        fields: {
          domain: optional(
            string({
              description: "Base domain trimmed from host names when they are displayed.",
              check: (v) =>
                /^\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$/.test(v)
                  ? undefined
                  : `${JSON.stringify(v)} is not a domain name`,
            }),
          ),
          ...backendSections(),
          nebula: optional(
            table({
              description: "The Nebula mesh that `ogygia nebula` manages.",
              fields: {
                network: string({
                  description: "The network's name: certificates' registry keys live under it.",
                  default: "ogygia",
                  check: (v) =>
                    /^[A-Za-z0-9_-]{1,64}$/.test(v)
                      ? undefined
                      : `${JSON.stringify(v)} must be letters, digits, "_" or "-"`,
                }),
                subnet: optional(
                  string({
                    description:
                      "The IPv4 network hosts' addresses come from with `--ip auto`, like 10.42.0.0/16.",
                    check: (v) =>
                      /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(v)
                        ? undefined
                        : `${JSON.stringify(v)} is not an IPv4 network like "10.42.0.0/16"`,
                  }),
                ),
                ca_dir: string({
                  description:
                    "Where `ogygia nebula ca init` writes ca.crt and ca.key and `sign` reads them " +
                    "(on the operator's machine, never a host).",
                  default: "nebula-ca",
                }),
                cert_dir: string({
                  description:
                    "Where `ogygia nebula sign` writes certificates, named by a hash of their " +
                    "contents: a folder meant to be committed.",
                  default: "nebula",
                }),
                cert_file: optional(
                  string({
                    description:
                      "This host's certificate (the one its Nebula uses): `ogygia publish` publishes " +
                      "its facts (address, groups, expiry, fingerprints) as the host's `nebula` key.",
                    check: (v) => (v.trim() === "" ? "must name a file" : undefined),
                  }),
                ),
                ca_files: stringList({
                  description:
                    "The CA certificates (or bundles) the mesh trusts: `ogygia nebula status` calls " +
                    "a certificate signed by any other CA critical. Besides ca_dir's ca.crt, if any.",
                  default: [],
                  check: (v) => (v.trim() === "" ? "must name a file" : undefined),
                }),
              },
            }),
          ),
          builder: builderSection(),
          update: updateSection(),
          impact: table({
            description: "Settings of `ogygia diff`, `ogygia impact` and `ogygia who-runs`.",
            fields: {
              irisd_url: string({
                description:
                  "The local ogygia-irisd, through which closures and files of store paths " +
                  "this host lacks are read from the fleet.",
                default: DEFAULT_IRISD_URL,
                check: (v) => checkHttpUrl(v, { example: DEFAULT_IRISD_URL }),
              }),
              concurrency: integer({
                description: "Requests to ogygia-irisd in flight at once.",
                default: 32,
                min: 1,
                max: 1024,
              }),
            },
          }),
          publish: table({
            description: "Settings of the `ogygia publish` daemon.",
            fields: {
              lease_ttl_seconds: integer({
                description:
                  "Seconds after which a host that stopped without saying so (crash, power loss, " +
                  "SIGKILL) shows offline: the etcd lease TTL, or the ZooKeeper session timeout " +
                  "(which the server rounds into its own minimum and maximum).",
                default: DEFAULT_LEASE_TTL_SECONDS,
                min: 2,
                max: 3600,
              }),
              resync_interval_seconds: integer({
                description:
                  "Seconds between full resyncs: the publisher reads its keys back, rewrites any " +
                  "that differ or went missing, and refreshes updated_at.",
                default: DEFAULT_RESYNC_INTERVAL_SECONDS,
                min: 1,
                max: 86_400,
              }),
            },
          }),
        },
      }),
    },
  });
}

export interface BackendConfig {
  endpoints: string[];
  namespace: string;
  timeoutSeconds: number;
  /** TLS and authentication files, when the section names any. */
  credentials?: FleetCredentials | undefined;
}

export interface PublishConfig {
  /** Seconds until `alive` disappears after the publisher stops renewing it. */
  leaseTtlSeconds: number;
  /** Seconds between full resyncs (read back, heal, refresh `updated_at`). */
  resyncIntervalSeconds: number;
}

export interface ImpactConfig {
  /** Base URL of the local ogygia-irisd. */
  irisdUrl: string;
  concurrency: number;
}

export interface NebulaConfig {
  network: string;
  /** `a.b.c.d/bits`, checked by `ogygia nebula`. */
  subnet: string | undefined;
  caDir: string;
  certDir: string;
  /** This host's certificate, whose facts `ogygia publish` publishes. */
  certFile: string | undefined;
  /** The CA files `ogygia nebula status` trusts (ca_dir's ca.crt is added when it exists). */
  caFiles: string[];
}

export interface OgygiaSettings {
  /** The file this configuration was read from. */
  path: string;
  /** Domain suffix to trim from displayed host names, without a leading dot. */
  domain: string | undefined;
  publish: PublishConfig;
  /** `[ogygia.impact]`, defaults filled in (absent only in configurations built by hand). */
  impact?: ImpactConfig;
  /** `[ogygia.nebula]`, when present. */
  nebula: NebulaConfig | undefined;
  /** `[ogygia.builder]`, when present: this host offers remote builds. */
  builder?: BuilderConfig | undefined;
  /** `[ogygia.update]`, defaults filled in (absent only in configurations built by hand). */
  update?: UpdateConfig;
}

/** Each registered backend's section, undefined when the file has none. */
export type OgygiaConfig = OgygiaSettings & Record<BackendKind, BackendConfig | undefined>;

function toBackend(
  kind: BackendKind,
  raw: RawBackend | undefined,
  file: string,
  ctx: SchemaContext,
): BackendConfig | undefined {
  if (!raw) return undefined;
  checkCredentials(kind, raw, ctx);
  const credentials = toCredentials(raw, file);
  return {
    endpoints: raw.endpoints,
    namespace: raw.namespace.replace(/\/+$/, ""),
    timeoutSeconds: raw.timeout_seconds,
    ...(credentials && { credentials }),
  };
}

/** Parses and validates configuration text; `file` is used in error messages. */
export async function parseConfig(text: string, file: string): Promise<OgygiaConfig> {
  const data = await parseTomlText(text, file);
  const ctx: SchemaContext = { file, lines: locateKeys(text) };
  const raw = configSchema().parse(data, [], ctx);
  const domain = raw.ogygia.domain?.replace(/^\.+|\.+$/g, "");
  const backends = Object.fromEntries(
    BACKEND_NAMES.map((b) => [b.kind, toBackend(b.kind, raw.ogygia[b.kind], file, ctx)]),
  ) as Record<BackendKind, BackendConfig | undefined>;
  return {
    path: file,
    domain: domain === "" ? undefined : domain,
    ...backends,
    nebula: raw.ogygia.nebula && {
      network: raw.ogygia.nebula.network,
      subnet: raw.ogygia.nebula.subnet,
      caDir: raw.ogygia.nebula.ca_dir,
      certDir: raw.ogygia.nebula.cert_dir,
      certFile: raw.ogygia.nebula.cert_file,
      caFiles: raw.ogygia.nebula.ca_files,
    },
    builder: raw.ogygia.builder && {
      user: raw.ogygia.builder.user,
      address: raw.ogygia.builder.address,
      protocol: raw.ogygia.builder.protocol === "ssh" ? "ssh" : "ssh-ng",
      systems: raw.ogygia.builder.systems,
      maxJobs: raw.ogygia.builder.max_jobs,
      speedFactor: raw.ogygia.builder.speed_factor,
      supportedFeatures: raw.ogygia.builder.supported_features,
      mandatoryFeatures: raw.ogygia.builder.mandatory_features,
      hostKeyFile: raw.ogygia.builder.host_key_file,
    },
    impact: {
      irisdUrl: raw.ogygia.impact.irisd_url.replace(/\/+$/, ""),
      concurrency: raw.ogygia.impact.concurrency,
    },
    update: {
      stateDir: raw.ogygia.update.state_dir,
      substituters: raw.ogygia.update.substituters,
      trustedPublicKeys: raw.ogygia.update.trusted_public_keys,
      probes: raw.ogygia.update.probes,
      httpProbes: raw.ogygia.update.http_probes,
      checkUnits: raw.ogygia.update.check_units,
      healthDeadlineSeconds: raw.ogygia.update.health_deadline_seconds,
      activationTimeoutSeconds: raw.ogygia.update.activation_timeout_seconds,
      pollIntervalSeconds: raw.ogygia.update.poll_interval_seconds,
      reboot: raw.ogygia.update.reboot as UpdateConfig["reboot"],
      rebootWindow: raw.ogygia.update.reboot_window,
      rebootCommand: raw.ogygia.update.reboot_command,
    },
    publish: {
      leaseTtlSeconds: raw.ogygia.publish.lease_ttl_seconds,
      resyncIntervalSeconds: raw.ogygia.publish.resync_interval_seconds,
    },
  };
}

export interface ConfigSource {
  /** The path to read. */
  path: string;
  /** The path as shown to the user (the logical path under `--root`). */
  displayPath: string;
  /** Whether the user named this file (flag or environment): then it must exist. */
  explicit: boolean;
  /**
   * Why the default path could not be resolved under `--root` (a symbolic
   * link loop): then there is no configuration to read, as for a missing
   * default file, and commands show this as a warning.
   */
  unreadable?: string;
}

/** `file`'s status, undefined when it does not exist, null when `stat` failed otherwise. */
function statIfPresent(file: string): Stats | undefined | null {
  try {
    return statSync(file, { throwIfNoEntry: false });
  } catch {
    return null;
  }
}

/**
 * Reads the configuration. Returns undefined when the default file does not
 * exist (local-only mode); an explicitly named file must exist.
 */
export async function loadConfig(source: ConfigSource): Promise<OgygiaConfig | undefined> {
  if (source.unreadable !== undefined) return undefined;
  // No default file is local-only mode, the common case: asked without an
  // exception, which costs a start ~0.4 ms the first time. Any other failure
  // is left to the read below, which reports it.
  if (!source.explicit && statIfPresent(source.path) === undefined) return undefined;
  let text: string;
  try {
    // Synchronous: one small local file; no thread pool for it.
    text = readFileSync(source.path, "utf8");
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "ENOTDIR") && !source.explicit) return undefined;
    if (hasErrorCode(err, "ENOENT", "ENOTDIR")) {
      throw new OgygiaError(
        "ERR_OGYGIA_CONFIG_READ",
        `configuration file ${source.displayPath} does not exist`,
        { hint: "Check --config or $OGYGIA_CONFIG, or unset it to use the default path." },
      );
    }
    if (hasErrorCode(err, "EACCES", "EPERM")) {
      throw new OgygiaError(
        "ERR_OGYGIA_CONFIG_READ",
        `cannot read configuration file ${source.displayPath}: permission denied`,
        { hint: "Run as a user that can read it, or point $OGYGIA_CONFIG elsewhere.", cause: err },
      );
    }
    if (hasErrorCode(err, "EISDIR")) {
      throw new OgygiaError(
        "ERR_OGYGIA_CONFIG_READ",
        `configuration path ${source.displayPath} is a directory, not a file`,
        { cause: err },
      );
    }
    throw err;
  }
  return await parseConfig(text, source.displayPath);
}
