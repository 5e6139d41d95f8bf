/**
 * `hostname -f`'s answer read from local files, when those files provably
 * decide it, so the CLI need not start a process (~9 % of `ogygia status`'s
 * start-up) for it.
 *
 * `hostname -f` asks the resolver for the canonical name of gethostname()'s
 * answer: getaddrinfo(AI_CANONNAME) (Debian's and inetutils' `hostname`) or
 * gethostbyname() (net-tools', NixOS'). glibc's resolver asks the services of
 * the `hosts:` line of /etc/nsswitch.conf in turn and stops at the first that
 * finds the name (the default action on success). The `files` service reads
 * /etc/hosts: the canonical name is the official (first) name of the first
 * line that lists the name, as official name or alias, compared ignoring case.
 *
 * So the answer is taken from /etc/hosts only when:
 * - the one `hosts:` line starts with `files` (no action after it), or with
 *   `mymachines` and then `files` (NixOS' default) while systemd-machined
 *   has no machine of that name registered (`/run/systemd/machines/<name>`):
 *   nss-mymachines answers only for registered machines;
 * - the first line of /etc/hosts that lists the name has an IPv4 address
 *   (for an IPv6 line, gethostbyname() and getaddrinfo() disagree);
 * - the name is a plain host name (letters, digits, `-`, `.`), not an address.
 * Anything else (no such line, an unusual file): undefined, and the caller
 * runs `hostname -f` as before.
 */

import { readdirSync, readFileSync } from "node:fs";

import { hasErrorCode } from "../core/index.js";

/** The files' text (undefined: unreadable) and the names in `/run/systemd/machines`. */
export interface ResolverFiles {
  nsswitch: string | undefined;
  hosts: string | undefined;
  /** Registered machines; undefined when the folder does not exist, null when it cannot be read. */
  machines: readonly string[] | null | undefined;
}

const HOST_NAME =
  /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const ALL_DIGITS_AND_DOTS = /^[\d.]+$/;
/** glibc's isspace() in the C locale, which separates the fields of /etc/hosts. */
const SPACE = /[ \t\n\v\f\r]+/;

/**
 * The services of the `hosts:` database in nsswitch.conf's text, with their
 * `[...]` actions as separate words; undefined when there is no such line
 * or more than one.
 */
export function hostsServices(nsswitch: string): string[] | undefined {
  let found: string[] | undefined;
  for (const raw of nsswitch.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    const match = /^hosts\s*:(.*)$/i.exec(line);
    if (!match) continue;
    if (found) return undefined;
    found = (match[1] ?? "").replace(/\[/g, " [").replace(/\]/g, "] ").trim().split(/\s+/);
  }
  return found;
}

/** Whether glibc reaches `files` first for `name`, per the rules in the module comment. */
function filesDecide(
  services: readonly string[],
  name: string,
  machines: ResolverFiles["machines"],
): boolean {
  let i = 0;
  if (services[i] === "mymachines") {
    const lower = name.toLowerCase();
    if (machines === null || machines?.some((machine) => machine.toLowerCase() === lower)) {
      return false;
    }
    i += 1;
  }
  // An action right after files (`files [SUCCESS=continue]`) could change
  // what wins; one after a later service does not, as files answered first.
  return services[i] === "files" && !(services[i + 1] ?? "").startsWith("[");
}

/**
 * The official name of the first line of /etc/hosts' text that lists `name`,
 * or undefined when no line lists it or that line's address is not IPv4.
 */
export function officialName(hosts: string, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const raw of hosts.split("\n")) {
    const words = raw
      .replace(/#.*/, "")
      .split(SPACE)
      .filter((word) => word !== "");
    if (words.length < 2) continue;
    if (!words.slice(1).some((word) => word.toLowerCase() === wanted)) continue;
    return IPV4.test(words[0] ?? "") ? words[1] : undefined;
  }
  return undefined;
}

/** `hostname -f`'s answer for `name` (gethostname()'s) from these files, or undefined when they do not decide it. */
export function canonicalNameFromFiles(name: string, files: ResolverFiles): string | undefined {
  if (!HOST_NAME.test(name) || ALL_DIGITS_AND_DOTS.test(name)) return undefined;
  if (files.nsswitch === undefined || files.hosts === undefined) return undefined;
  const services = hostsServices(files.nsswitch);
  if (!services || !filesDecide(services, name, files.machines)) return undefined;
  const official = officialName(files.hosts, name);
  return official !== undefined && HOST_NAME.test(official) ? official : undefined;
}

/** A file's text; undefined when it cannot be read for any reason (`hostname -f` then runs). */
function readText(file: string): string | undefined {
  try {
    return readFileSync(file, "latin1");
  } catch {
    return undefined;
  }
}

function listMachines(): string[] | null | undefined {
  try {
    return readdirSync("/run/systemd/machines");
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "ENOTDIR")) return undefined;
    // Unreadable: a machine of that name cannot be ruled out.
    return null;
  }
}

/** `hostname -f`'s answer for `name` from this machine's files, or undefined (see the module comment). */
export function canonicalNameFromSystemFiles(name: string): string | undefined {
  const nsswitch = readText("/etc/nsswitch.conf");
  if (nsswitch === undefined) return undefined;
  const services = hostsServices(nsswitch);
  return canonicalNameFromFiles(name, {
    nsswitch,
    hosts: readText("/etc/hosts"),
    machines: services?.[0] === "mymachines" ? listMachines() : undefined,
  });
}
