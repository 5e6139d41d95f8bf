/**
 * Nebula addresses handed out through the fleet registry with
 * compare-and-swap, so that two operators signing at once never give one
 * address to two hosts, and an address once given stays with its host.
 *
 * Keys, under `<prefix>` (`[ogygia.nebula]`'s registry prefix):
 *   <prefix>/addresses/<a.b.c.d>  = host name   (who owns the address)
 *   <prefix>/hosts/<host>         = a.b.c.d     (the host's address)
 *   <prefix>/next                 = a.b.c.d     (where the next search starts; a hint)
 * The address key is taken first (create if absent): whoever creates it
 * owns it. Then the host key; if another operator gave this host an address
 * meanwhile, ours is released and theirs kept.
 */

import { OgygiaError } from "../core/index.js";
import type { Coordinator } from "../fleet/index.js";
import { contains, formatIpv4, hostRange, parseIpv4, type Ipv4Network } from "./addresses.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface Allocation {
  /** The host's address. */
  address: number;
  /** True when the host had it already (a re-signing). */
  kept: boolean;
}

export interface AllocateOptions {
  coordinator: Coordinator;
  prefix: string;
  network: Ipv4Network;
  host: string;
  /** An address the operator chose, instead of the next free one. */
  requested?: number;
  timeoutMs: number;
}

const hostKey = (prefix: string, host: string): string => `${prefix}/hosts/${host}`;
const addressKey = (prefix: string, address: number): string =>
  `${prefix}/addresses/${formatIpv4(address)}`;

async function readText(
  coordinator: Coordinator,
  key: string,
  timeoutMs: number,
): Promise<{ text: string; version: bigint } | undefined> {
  const { entry } = await coordinator.get(key, { timeoutMs });
  return entry ? { text: decoder.decode(entry.value), version: entry.version } : undefined;
}

function conflict(message: string, hint?: string): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_NEBULA_ADDRESS", message, hint === undefined ? {} : { hint });
}

/** Takes `address` for `host`; false when another host owns it. */
async function claim(options: AllocateOptions, address: number): Promise<boolean> {
  const { coordinator, prefix, host, timeoutMs } = options;
  const key = addressKey(prefix, address);
  const result = await coordinator.compareAndSet(key, "absent", encoder.encode(host), {
    timeoutMs,
  });
  if (result.won) return true;
  return (await readText(coordinator, key, timeoutMs))?.text === host;
}

/** The host's address: the one it has, the one requested, or the next free one. */
export async function allocateAddress(options: AllocateOptions): Promise<Allocation> {
  const { coordinator, prefix, network, host, requested, timeoutMs } = options;
  if (requested !== undefined && !contains(network, requested)) {
    throw conflict(`${formatIpv4(requested)} is not a host address of the Nebula subnet`);
  }
  const existing = await readText(coordinator, hostKey(prefix, host), timeoutMs);
  if (existing !== undefined) {
    const address = parseIpv4(existing.text);
    if (address === undefined) {
      throw conflict(
        `the registry's address of ${host} is not an IPv4 address: ${JSON.stringify(existing.text)}`,
      );
    }
    if (requested !== undefined && requested !== address) {
      throw conflict(
        `${host} already has ${existing.text}; an address stays with its host`,
        `Sign with --ip auto (or --ip ${existing.text}/${network.bits}) to keep it.`,
      );
    }
    // Repairs a claim an interrupted run left half made.
    if (!(await claim(options, address))) {
      throw conflict(`${host} has ${existing.text} in the registry, but another host owns it`);
    }
    return { address, kept: true };
  }

  let address: number | undefined;
  if (requested !== undefined) {
    if (!(await claim(options, requested))) {
      const owner = await readText(coordinator, addressKey(prefix, requested), timeoutMs);
      throw conflict(`${formatIpv4(requested)} belongs to ${owner?.text ?? "another host"}`);
    }
    address = requested;
  } else {
    address = await claimNextFree(options);
  }

  const record = await coordinator.compareAndSet(
    hostKey(prefix, host),
    "absent",
    encoder.encode(formatIpv4(address)),
    { timeoutMs },
  );
  if (record.won) return { address, kept: false };
  // Another operator gave this host an address meanwhile: keep theirs, free ours.
  const mine = await coordinator.get(addressKey(prefix, address), { timeoutMs });
  if (mine.entry) {
    await coordinator.compareAndDelete(addressKey(prefix, address), mine.entry, { timeoutMs });
  }
  return allocateAddress({ ...options, requested: undefined });
}

/** Claims the first free address from the hint on, wrapping around once. */
async function claimNextFree(options: AllocateOptions): Promise<number> {
  const { coordinator, prefix, network, timeoutMs } = options;
  const { first, last } = hostRange(network);
  const hintKey = `${prefix}/next`;
  const hint = await readText(coordinator, hintKey, timeoutMs);
  const hinted = (hint && parseIpv4(hint.text)) ?? first;
  const start = hinted >= first && hinted <= last ? hinted : first;
  const size = last - first + 1;
  for (let i = 0; i < size; i++) {
    const candidate = first + ((start - first + i) % size);
    if (await claim(options, candidate)) {
      // Best effort: a lost race on the hint only costs the next run a few reads.
      const next = encoder.encode(formatIpv4(candidate === last ? first : candidate + 1));
      await coordinator.compareAndSet(
        hintKey,
        hint === undefined ? "absent" : { version: hint.version },
        next,
        { timeoutMs },
      );
      return candidate;
    }
  }
  throw conflict(
    `no free address left in ${formatIpv4(network.base)}/${network.bits}`,
    "Use a larger subnet ([ogygia.nebula] subnet).",
  );
}
