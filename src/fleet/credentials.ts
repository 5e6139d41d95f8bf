/**
 * The fleet's credentials: TLS material and passwords named by the
 * configuration, read from files when a client is made (never from the
 * TOML, never logged), and the clear errors for what the servers refuse:
 * an untrusted certificate or a refused password is `ERR_OGYGIA_FLEET_CONNECT`
 * (the publisher retries it: a password file may be replaced), a refused
 * write `ERR_OGYGIA_FLEET_WRITE`, each worded with what to fix.
 *
 * A relative file name is looked up in systemd's credentials folder
 * (`$CREDENTIALS_DIRECTORY`, what `LoadCredential=` fills) when it is set,
 * else next to the configuration file.
 */

import { readFileSync, statSync } from "node:fs";
import path from "node:path";

import { OgygiaError, errorMessage, hasErrorCode } from "../core/index.js";
import { backendLabel, type BackendKind } from "./backends.js";
import { formatEndpoints } from "./errors.js";
import type { BackendConfig } from "./types.js";

/** What a backend section says about credentials (file names, never secrets). */
export interface FleetCredentials {
  /** PEM CA bundle the servers' certificates must chain to (etcd, https endpoints). */
  caFile?: string | undefined;
  /** PEM client certificate and its key (etcd, https endpoints). */
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** The user (etcd) or digest identity (ZooKeeper) to authenticate as. */
  username?: string | undefined;
  /** The file holding that user's password (one line). */
  passwordFile?: string | undefined;
  /** The configuration file's folder: relative names are found there without systemd. */
  baseDir?: string | undefined;
}

type FileKey = "caFile" | "certFile" | "keyFile" | "passwordFile";

/** The configuration key each file comes from, for messages. */
const FILE_KEYS: Readonly<Record<FileKey, string>> = {
  caFile: "ca_file",
  certFile: "cert_file",
  keyFile: "key_file",
  passwordFile: "password_file",
};

/** Files that must not be readable by others (a warning otherwise). */
const SECRET_FILES: readonly FileKey[] = ["keyFile", "passwordFile"];

/** Where a credential file named `name` is read from. */
export function resolveCredentialPath(
  name: string,
  credentials: FleetCredentials,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (path.isAbsolute(name)) return name;
  const systemd = env.CREDENTIALS_DIRECTORY;
  if (systemd !== undefined && systemd !== "") return path.join(systemd, name);
  return path.resolve(credentials.baseDir ?? ".", name);
}

function credentialsError(message: string, hint: string, cause?: unknown): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_CONFIG_READ", message, { hint, cause });
}

/** Why a secret file could not be read, in words (never its content). */
export function whyUnreadable(err: unknown): string {
  return hasErrorCode(err, "ENOENT", "ENOTDIR")
    ? "it does not exist"
    : hasErrorCode(err, "EACCES", "EPERM")
      ? "permission denied"
      : hasErrorCode(err, "EISDIR")
        ? "it is a directory"
        : errorMessage(err);
}

/** Reads one credential file, with an error naming it (and never its content). */
function readCredentialFile(
  kind: BackendKind,
  key: FileKey,
  credentials: FleetCredentials,
): Buffer {
  const name = credentials[key];
  if (name === undefined) throw new Error(`readCredentialFile: ${key} is not set`);
  const file = resolveCredentialPath(name, credentials);
  const section = `[ogygia.${kind}] ${FILE_KEYS[key]}`;
  try {
    return readFileSync(file);
  } catch (err) {
    throw credentialsError(
      `cannot read ${section} ${file}: ${whyUnreadable(err)}`,
      `Check ${section}; the file must be readable by the user running ogygia ` +
        "(the NixOS module passes it with systemd's LoadCredential).",
      err,
    );
  }
}

/** A password file's content: its first line, without the line ending. */
function readPassword(kind: BackendKind, credentials: FleetCredentials): string {
  const text = readCredentialFile(kind, "passwordFile", credentials).toString("utf8");
  const password = text.split(/\r?\n/, 1)[0] ?? "";
  if (password === "") {
    throw credentialsError(
      `[ogygia.${kind}] password_file ${resolveCredentialPath(credentials.passwordFile ?? "", credentials)} is empty`,
      "Write the password on the file's first line (`ogygia fleet grant` writes it).",
    );
  }
  return password;
}

/** The user and password a backend authenticates with, or undefined. */
export function readAuth(
  kind: BackendKind,
  config: BackendConfig,
): { username: string; password: string } | undefined {
  const credentials = config.credentials;
  if (credentials?.username === undefined) return undefined;
  return { username: credentials.username, password: readPassword(kind, credentials) };
}

/** TLS material for etcd's https endpoints, or undefined when none is configured. */
export function readTls(
  config: BackendConfig,
): { ca?: Buffer | undefined; cert?: Buffer | undefined; key?: Buffer | undefined } | undefined {
  const credentials = config.credentials;
  if (!credentials) return undefined;
  const { caFile, certFile, keyFile } = credentials;
  if (caFile === undefined && certFile === undefined && keyFile === undefined) return undefined;
  const read = (key: FileKey): Buffer | undefined =>
    credentials[key] === undefined ? undefined : readCredentialFile("etcd", key, credentials);
  return { ca: read("caFile"), cert: read("certFile"), key: read("keyFile") };
}

/** A problem with a credential file found by `ogygia config check`. */
export interface CredentialProblem {
  level: "error" | "warning";
  message: string;
}

/**
 * Checks that each credential file a section names can be read, and warns
 * about secrets others may read. Relative names wait for systemd's
 * credentials folder when it is not set here (as at NixOS build time).
 */
export function checkCredentialFiles(
  kind: BackendKind,
  credentials: FleetCredentials | undefined,
  env: NodeJS.ProcessEnv = process.env,
): CredentialProblem[] {
  if (!credentials) return [];
  const problems: CredentialProblem[] = [];
  for (const key of Object.keys(FILE_KEYS) as FileKey[]) {
    const name = credentials[key];
    if (name === undefined) continue;
    if (!path.isAbsolute(name) && (env.CREDENTIALS_DIRECTORY ?? "") === "") continue;
    const file = resolveCredentialPath(name, credentials, env);
    const section = `[ogygia.${kind}] ${FILE_KEYS[key]}`;
    try {
      readFileSync(file);
    } catch (err) {
      problems.push({
        level: "error",
        message: `cannot read ${section} ${file}: ${errorMessage(err)}`,
      });
      continue;
    }
    if (SECRET_FILES.includes(key)) {
      const mode = statSync(file).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        problems.push({
          level: "warning",
          message:
            `${section} ${file} is readable by others (mode ${mode.toString(8).padStart(4, "0")}); ` +
            "make it 0600 (chmod 600)",
        });
      }
    }
  }
  return problems;
}

/** Error codes of a server certificate the client does not trust (Node's TLS). */
const UNTRUSTED_CERTIFICATE = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** The TLS verification failure somewhere in `err`'s causes, if any. */
function untrustedCertificate(err: unknown): Error | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && UNTRUSTED_CERTIFICATE.has(code)) return current;
    current = current.cause;
  }
  return undefined;
}

/**
 * The clear error for a refused identity, when `err` is one: a server
 * certificate this host does not trust, or a user or password the server
 * does not accept. Undefined for anything else.
 */
export function credentialFailure(
  kind: BackendKind,
  config: BackendConfig,
  err: unknown,
): OgygiaError | undefined {
  const label = backendLabel(kind);
  const where = formatEndpoints(config.endpoints);
  const tls = untrustedCertificate(err);
  if (tls) {
    return new OgygiaError(
      "ERR_OGYGIA_FLEET_CONNECT",
      `the ${label} server at ${where} presented a certificate this host does not trust: ${tls.message}`,
      {
        hint:
          `Set ca_file in [ogygia.${kind}] to the CA that signed the server's certificate, ` +
          "and check that the certificate names the endpoint's host.",
        cause: err,
      },
    );
  }
  const text = errorMessage(err);
  if (/authentication failed|invalid user ID or password|AUTH_FAILED/i.test(text)) {
    const user = config.credentials?.username;
    return new OgygiaError(
      "ERR_OGYGIA_FLEET_CONNECT",
      `${label} at ${where} refused the credentials of user ${JSON.stringify(user ?? "")}: wrong user name or password`,
      {
        hint:
          `Check username and password_file in [ogygia.${kind}] ` +
          "(`ogygia fleet grant HOST` makes a host's user and writes its password file).",
        cause: err,
      },
    );
  }
  if (/user name is empty|user name not found|auth: revision in header is old/i.test(text)) {
    return new OgygiaError(
      "ERR_OGYGIA_FLEET_CONNECT",
      `${label} at ${where} refused the request: ${text}`,
      { hint: `Check username and password_file in [ogygia.${kind}].`, cause: err },
    );
  }
  return undefined;
}

/**
 * The clear error for a write the server refused for lack of permission:
 * with per-host isolation, a host's credentials write only its own keys.
 */
export function permissionFailure(
  kind: BackendKind,
  config: BackendConfig,
  err: unknown,
  what: string,
): OgygiaError | undefined {
  const text = errorMessage(err);
  if (!/permission denied|NO_AUTH|Not authenticated/i.test(text)) return undefined;
  const label = backendLabel(kind);
  const user = config.credentials?.username;
  return new OgygiaError(
    "ERR_OGYGIA_FLEET_WRITE",
    `${label} at ${formatEndpoints(config.endpoints)} refused to let ${
      user === undefined ? "this client (no user configured)" : `user ${JSON.stringify(user)}`
    } ${what}: ${text}`,
    {
      hint:
        "With per-host isolation a host's credentials may write only <namespace>/<host>/ " +
        "of its own host name (and a rollout's slots and failed records): check the host name " +
        `(OGYGIA_HOSTNAME, --host) and username in [ogygia.${kind}], or run ` +
        "`ogygia fleet grant HOST` with admin credentials (again, for a grant made before " +
        "rollouts had access).",
      cause: err,
    },
  );
}

/**
 * \`alive\` of \`host\` is held by another running publisher (issue 13, row
 * 7): refused as a write, so that the publisher stands by and retries
 * until the holder's lease or session is gone.
 */
export function anotherPublisher(
  config: BackendConfig,
  host: string,
  owner: string,
  since: string,
): OgygiaError {
  const key = `${config.namespace}/${host}/alive`;
  return new OgygiaError(
    "ERR_OGYGIA_FLEET_WRITE",
    `another publisher holds ${key} (${owner}, alive since ${JSON.stringify(since.slice(0, 64))}): ` +
      "two publishers use the host name " +
      `${JSON.stringify(host)}; this one stands by, writing nothing, until that one stops`,
    {
      hint:
        "Give each host its own name (OGYGIA_HOSTNAME, networking.hostName), or stop the " +
        "other publisher. A publisher that was killed holds alive until its lease or session times out.",
    },
  );
}
