/**
 * IPv4 address ranges as sites write them (pure): `10.0.1.0/24` (the hosts of the network, without
 * its network and broadcast addresses), `10.0.1.10-10.0.1.250`, the short `10.0.1.10-250`, or one
 * address. Expanded addresses are bounded, so a typo like `/8` cannot make the agent scan 16 million.
 */

/** Addresses one range may expand to: a /16 and some. */
export const MAX_RANGE_ADDRESSES = 65_536;

export function parseIpv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text.trim());
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255 || (m[i]!.length > 1 && m[i]!.startsWith('0'))) return undefined;
    n = n * 256 + octet;
  }
  return n;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export type RangeResult = { ok: true; addresses: string[] } | { ok: false; message: string };

/** The addresses of a range, in order. */
export function expandRange(text: string, max = MAX_RANGE_ADDRESSES): RangeResult {
  const spec = text.trim();
  let first: number | undefined;
  let last: number | undefined;
  const cidr = /^([\d.]+)\/(\d{1,2})$/.exec(spec);
  const dash = /^([\d.]+)\s*-\s*([\d.]+)$/.exec(spec);
  if (cidr) {
    const base = parseIpv4(cidr[1]!);
    const bits = Number(cidr[2]);
    if (base === undefined || bits > 32) return { ok: false, message: `"${spec}" is not an IPv4 network` };
    const size = 2 ** (32 - bits);
    const network = Math.floor(base / size) * size;
    if (network !== base)
      return { ok: false, message: `"${spec}": the network of /${bits} is ${formatIpv4(network)}` };
    // /31 and /32 have no network or broadcast address to leave out (RFC 3021).
    first = bits >= 31 ? network : network + 1;
    last = bits >= 31 ? network + size - 1 : network + size - 2;
  } else if (dash) {
    first = parseIpv4(dash[1]!);
    const to = dash[2]!;
    if (first !== undefined && /^\d{1,3}$/.test(to)) {
      const octet = Number(to);
      last = octet <= 255 ? Math.floor(first / 256) * 256 + octet : undefined;
    } else last = parseIpv4(to);
    if (first === undefined || last === undefined)
      return { ok: false, message: `"${spec}" is not an address range` };
    if (last < first) return { ok: false, message: `"${spec}" ends before it starts` };
  } else {
    const one = parseIpv4(spec);
    if (one === undefined)
      return { ok: false, message: `"${spec}" is not an IPv4 address, range or network` };
    first = one;
    last = one;
  }
  const count = last - first + 1;
  if (count > max) return { ok: false, message: `"${spec}" has ${count} addresses, more than ${max}` };
  const addresses: string[] = [];
  for (let n = first; n <= last; n++) addresses.push(formatIpv4(n));
  return { ok: true, addresses };
}
