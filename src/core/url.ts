/**
 * The one checker of http(s) URLs written in configuration files. Every
 * message it returns names the URL with its credentials redacted.
 */

import { redactUrl } from "./text.js";

export interface HttpUrlRules {
  /** A valid URL shown in the "not a URL" message (and for `originOnly`). */
  example: string;
  /** Only scheme, host and port: no path other than `/`, no query, no fragment. */
  originOnly?: boolean;
}

/** Why `value` is not an acceptable `http://` or `https://` URL, or undefined when it is. */
export function checkHttpUrl(value: string, rules: HttpUrlRules): string | undefined {
  const shown = JSON.stringify(redactUrl(value));
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `${shown} is not a URL; write it like "${rules.example}"`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `${shown} must use http:// or https://`;
  }
  if (rules.originOnly === true) {
    if (url.pathname !== "/" || url.search !== "" || url.hash !== "") {
      return `${shown} must be a scheme, host and port only, like "${rules.example}"`;
    }
  } else if (url.search !== "" || url.hash !== "") {
    return `${shown} must not have a query or fragment`;
  }
  return undefined;
}

/** An IPv4 address in dotted-quad form (four decimal octets, 0-255). */
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/**
 * Whether `host` is an IPv4 loopback address (127.0.0.0/8), written as
 * node:net's `isIP` accepts it. Here rather than through node:net, which
 * loads streams and sockets at every start of the CLI for one check.
 */
export function isLoopbackIPv4(host: string): boolean {
  return IPV4.test(host) && host.startsWith("127.");
}
