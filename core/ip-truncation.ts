// Truncates the client IP addresses stored with events (MICROFLOWS_IP_TRUNCATION): an IPv4 address keeps its /24
// (last octet 0), an IPv6 address its /48, the precision of a city or an ISP rather than of a household. Pure.
import { isIP } from 'node:net';
import type { NewEvent } from './event';

/** IPv4 bits kept: the network, not the host. */
export const IPV4_PREFIX_BITS = 24;
/** IPv6 bits kept: a site's routing prefix (a /48 is what a provider assigns one customer site). */
export const IPV6_PREFIX_BITS = 48;

function truncateIpv4(address: string): string {
  const octets = address.split('.');
  return `${octets[0]}.${octets[1]}.${octets[2]}.0`;
}

/** The eight 16-bit groups of a valid IPv6 address (a dotted IPv4 tail counts as two). */
function ipv6Groups(address: string): number[] {
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const octets = text.slice(lastColon + 1).split('.').map(Number);
    tail.push(octets[0]! * 256 + octets[1]!, octets[2]! * 256 + octets[3]!);
    text = `${text.slice(0, lastColon + 1)}`;
    // "::1.2.3.4" leaves "::", "1::2.3.4.5" leaves "1::": an empty last group here is the one the tail replaced.
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const gap = text.indexOf('::');
  const head = gap === -1 ? parse(text) : parse(text.slice(0, gap));
  const rest = gap === -1 ? [] : parse(text.slice(gap + 2));
  const zeros = 8 - head.length - rest.length - tail.length;
  return [...head, ...Array<number>(gap === -1 ? 0 : zeros).fill(0), ...rest, ...tail];
}

/** Groups written the RFC 5952 way: lower-case hex, the longest run (of two or more) of zero groups as "::". */
function formatIpv6(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j += 1;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

function isIpv4Mapped(groups: number[]): boolean {
  return groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
}

/**
 * The address with its host part zeroed: `203.0.113.77` → `203.0.113.0`, `2001:db8:85a3:8d3:1319:8a2e:370:7348` →
 * `2001:db8:85a3::`. An IPv4-mapped IPv6 address (`::ffff:203.0.113.77`, what a dual-stack socket reports) is an
 * IPv4 client: its IPv4 part keeps its /24. A zone (`fe80::1%eth0`) names a local interface and is dropped.
 * Anything that is not an IP address gives null: a value in an IP field that cannot be read cannot be reduced,
 * so it is not kept either.
 */
export function truncateIp(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const trimmed = value.trim();
  const address = trimmed.includes('%') ? trimmed.slice(0, trimmed.indexOf('%')) : trimmed;
  const version = isIP(address);
  if (version === 4) return truncateIpv4(address);
  if (version !== 6) return null;
  const groups = ipv6Groups(address);
  if (isIpv4Mapped(groups)) return `::ffff:${truncateIpv4(`${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`)}`;
  const kept = IPV6_PREFIX_BITS / 16;
  return formatIpv6(groups.map((group, index) => (index < kept ? group : 0)));
}

/** Where ESP webhooks put the reader's address (core/esp-webhooks): their events' context.source ends so. */
const WEBHOOK_SOURCE_SUFFIX = '-webhook';

function withTruncatedIp(record: Record<string, unknown>): Record<string, unknown> {
  if (!Object.prototype.hasOwnProperty.call(record, 'ip')) return record;
  const { ip, ...rest } = record;
  const truncated = truncateIp(ip);
  return truncated === null ? rest : { ...rest, ip: truncated };
}

/**
 * The event with its client IP truncated: `context.ip` (what a Segment client sends, or the server records for a
 * click, open or unsubscribe) and, on an ESP webhook's engagement event, `properties.ip` (the reader's address).
 * Other properties named `ip` are the sender's own data and are left alone. The input is not modified.
 */
export function truncateEventIp<T extends Pick<NewEvent, 'context' | 'properties'>>(event: T): T {
  const context = withTruncatedIp(event.context);
  const fromWebhook = typeof event.context.source === 'string' && event.context.source.endsWith(WEBHOOK_SOURCE_SUFFIX);
  const properties = fromWebhook ? withTruncatedIp(event.properties) : event.properties;
  if (context === event.context && properties === event.properties) return event;
  return { ...event, context, properties };
}
