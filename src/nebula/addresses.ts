/**
 * IPv4 networks as Nebula certificates name them (`10.42.0.5/16`): parsing,
 * and the host addresses of a subnet in order.
 */

export interface Ipv4Network {
  /** The network address as a 32-bit unsigned number. */
  base: number;
  /** Prefix length, 1-30 for a network that has host addresses. */
  bits: number;
}

/** `a.b.c.d` as a number, or undefined when it is not a dotted quad. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

/** `address/bits`: the address and its prefix; undefined when malformed. */
export function parseCidr(text: string): { address: number; bits: number } | undefined {
  const match = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (!match) return undefined;
  const address = parseIpv4(match[1] ?? "");
  const bits = Number(match[2]);
  if (address === undefined || bits < 1 || bits > 32) return undefined;
  return { address, bits };
}

function networkOf(address: number, bits: number): number {
  const size = 2 ** (32 - bits);
  return address - (address % size);
}

/** A subnet (`10.42.0.0/16`) that has host addresses; the reason when it is not one. */
export function parseSubnet(text: string): Ipv4Network | string {
  const cidr = parseCidr(text);
  if (cidr === undefined)
    return `${JSON.stringify(text)} is not an IPv4 network like "10.42.0.0/16"`;
  if (cidr.bits > 30) return `${text} has no room for hosts: use a prefix of /30 or shorter`;
  if (networkOf(cidr.address, cidr.bits) !== cidr.address) {
    return `${text} is not a network address (did you mean ${formatIpv4(networkOf(cidr.address, cidr.bits))}/${cidr.bits}?)`;
  }
  return { base: cidr.address, bits: cidr.bits };
}

/** The first and last host address (network and broadcast addresses excluded). */
export function hostRange(network: Ipv4Network): { first: number; last: number } {
  return { first: network.base + 1, last: network.base + 2 ** (32 - network.bits) - 2 };
}

export function contains(network: Ipv4Network, address: number): boolean {
  const { first, last } = hostRange(network);
  return address >= first && address <= last;
}
