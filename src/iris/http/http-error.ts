/**
 * The error an HTTP handler throws: a status and a short reason for the
 * client. The server maps it, in one place, to a response, a log line and a
 * metric; anything else thrown by a handler is a bug and becomes a 500.
 */

import { OgygiaError } from "../../core/index.js";

export class HttpError extends OgygiaError {
  readonly status: number;
  /** Extra response headers, e.g. `Allow` for 405 or `Content-Range` for 416. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    status: number,
    message: string,
    options: { headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super("ERR_OGYGIA_HTTP", message, { cause: options.cause });
    this.name = "HttpError";
    this.status = status;
    this.headers = options.headers ?? {};
  }
}

/** 400: the request is malformed (a bad hash, an encoded slash, a dot segment). */
export function badRequest(message: string): HttpError {
  return new HttpError(400, message);
}

/** 404: nothing serveable here. */
export function notFound(message = "not found"): HttpError {
  return new HttpError(404, message);
}
