/**
 * The fleet as the dashboard last saw it, and the browsers following it
 * over Server-Sent Events. Each report from the status watch becomes one
 * change (hosts added, changed or gone) with the next revision; a browser
 * gets a full snapshot, then the changes. Event ids are `<run>.<revision>`:
 * a browser reconnecting with `Last-Event-ID` from this run resumes from
 * the recent changes kept here, any other gets a fresh snapshot.
 */

import type { ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";

import type { ChangeEvent, FleetHeader, FleetJson, HostJson } from "./wire.js";

/** Changes kept for resuming browsers. */
const RESUME_WINDOW = 256;
/** Bytes a client may have waiting before it is dropped to a resync. */
const CLIENT_QUEUE_BYTES = 4 * 1024 * 1024;
/** A comment every so often keeps proxies from closing an idle stream. */
const HEARTBEAT_MS = 15_000;

interface Change {
  revision: number;
  event: ChangeEvent;
}

export interface FleetChange {
  revision: number;
  previous: ReadonlyMap<string, HostJson>;
  event: ChangeEvent;
}

interface Client {
  res: ServerResponse;
  /** Frames the socket has not taken yet. */
  queue: string[];
  queuedBytes: number;
  /** Dropped from the stream: gets a snapshot once the socket drains. */
  resync: boolean;
}

function headerOf(fleet: FleetJson): FleetHeader {
  const { hosts: _hosts, ...header } = fleet;
  return header;
}

function sameUpdate(a: HostJson["update"], b: HostJson["update"]): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return (
    a.state === b.state &&
    a.target === b.target &&
    a.error === b.error &&
    a.changedAt === b.changedAt
  );
}

function sameHost(a: HostJson, b: HostJson): boolean {
  return (
    a.current === b.current &&
    a.booted === b.booted &&
    a.nextboot === b.nextboot &&
    a.online === b.online &&
    a.rebootRequired === b.rebootRequired &&
    a.updatedAt === b.updatedAt &&
    a.displayName === b.displayName &&
    a.local === b.local &&
    sameUpdate(a.update, b.update)
  );
}

/** The live fleet and its SSE subscribers. */
export class FleetHub {
  /** Identifies this run in event ids. */
  readonly run = randomBytes(4).toString("hex");
  #revision = 0;
  #header: FleetHeader | undefined;
  #hosts = new Map<string, HostJson>();
  #recent: Change[] = [];
  #clients = new Set<Client>();
  #ready: Promise<void>;
  #markReady!: () => void;
  #heartbeat: NodeJS.Timeout;

  constructor() {
    this.#ready = new Promise((resolve) => {
      this.#markReady = resolve;
    });
    this.#heartbeat = setInterval(() => {
      for (const client of this.#clients) this.#send(client, ": keepalive\n\n");
    }, HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  get revision(): number {
    return this.#revision;
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** Resolves once the first report is in. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** The current document, as `ogygia status --json` prints it; undefined before the first report. */
  fleet(): FleetJson | undefined {
    if (this.#header === undefined) return undefined;
    return { ...this.#header, hosts: [...this.#hosts.values()] };
  }

  host(name: string): HostJson | undefined {
    return this.#hosts.get(name);
  }

  /**
   * Takes a new report: sends the difference to every browser and returns
   * it, or undefined when nothing changed.
   */
  update(fleet: FleetJson): FleetChange | undefined {
    const header = headerOf(fleet);
    const upserts: HostJson[] = [];
    const next = new Map<string, HostJson>();
    for (const host of fleet.hosts) {
      next.set(host.host, host);
      const before = this.#hosts.get(host.host);
      if (before === undefined || !sameHost(before, host)) upserts.push(host);
    }
    // While the backend is away the report holds the local host only: keep
    // the fleet as last seen rather than showing every host gone.
    const removed =
      fleet.error === null ? [...this.#hosts.keys()].filter((name) => !next.has(name)) : [];
    if (fleet.error !== null) {
      for (const [name, host] of this.#hosts) if (!next.has(name)) next.set(name, host);
    }
    const headerChanged = JSON.stringify(header) !== JSON.stringify(this.#header);
    const first = this.#header === undefined;
    if (!first && !headerChanged && upserts.length === 0 && removed.length === 0) return undefined;
    const previous = this.#hosts;
    this.#header = header;
    this.#hosts = next;
    this.#revision += 1;
    const event: ChangeEvent = { header, upserts, removed };
    this.#recent.push({ revision: this.#revision, event });
    if (this.#recent.length > RESUME_WINDOW) this.#recent.shift();
    if (first) this.#markReady();
    const frame = this.#frame("change", event);
    for (const client of this.#clients) this.#send(client, frame);
    return { revision: this.#revision, previous, event };
  }

  /**
   * Streams to `res` until it closes: the changes after `lastEventId` when
   * they are still known, else a snapshot first.
   */
  subscribe(res: ServerResponse, lastEventId: string | undefined): void {
    const client: Client = { res, queue: [], queuedBytes: 0, resync: false };
    this.#clients.add(client);
    res.on("close", () => {
      this.#clients.delete(client);
    });
    res.on("drain", () => {
      this.#flush(client);
    });
    res.write("retry: 1000\n\n");
    const missed = this.#since(lastEventId);
    if (missed === undefined) {
      this.#send(client, this.#snapshotFrame());
    } else {
      for (const change of missed)
        this.#send(client, this.#frame("change", change.event, change.revision));
    }
  }

  close(): void {
    clearInterval(this.#heartbeat);
    for (const client of this.#clients) client.res.end();
    this.#clients.clear();
  }

  /** The changes after an event id of this run, or undefined when a snapshot is needed. */
  #since(lastEventId: string | undefined): Change[] | undefined {
    if (lastEventId === undefined || this.#header === undefined) return undefined;
    const match = /^([0-9a-f]+)\.(\d+)$/.exec(lastEventId);
    if (match?.[1] !== this.run) return undefined;
    const seen = Number(match[2]);
    if (seen > this.#revision) return undefined;
    if (seen === this.#revision) return [];
    const oldest = this.#recent[0]?.revision ?? Infinity;
    if (seen + 1 < oldest) return undefined;
    return this.#recent.filter((change) => change.revision > seen);
  }

  #snapshotFrame(): string {
    const fleet = this.fleet();
    // Before the first report the snapshot is empty; the first change fills it.
    return this.#frame("snapshot", { fleet: fleet ?? null });
  }

  #frame(type: string, data: unknown, revision = this.#revision): string {
    return `id: ${this.run}.${revision}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  /** Writes or queues a frame; a client too far behind is dropped to a resync. */
  #send(client: Client, frame: string): void {
    if (client.resync) return;
    if (client.queue.length === 0 && !client.res.writableNeedDrain) {
      client.res.write(frame);
      return;
    }
    client.queue.push(frame);
    client.queuedBytes += frame.length;
    if (client.queuedBytes > CLIENT_QUEUE_BYTES) {
      client.queue = [];
      client.queuedBytes = 0;
      client.resync = true;
    }
  }

  #flush(client: Client): void {
    if (client.resync) {
      client.resync = false;
      client.queue = [];
      client.queuedBytes = 0;
      this.#send(client, this.#snapshotFrame());
      return;
    }
    while (client.queue.length > 0 && !client.res.writableNeedDrain) {
      const frame = client.queue.shift() ?? "";
      client.queuedBytes -= frame.length;
      client.res.write(frame);
    }
  }
}
