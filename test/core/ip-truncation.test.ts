import { isIP } from 'node:net';
import fc from 'fast-check';
import { truncateEventIp, truncateIp } from '../../core/ip-truncation';
import { fuzzRun } from '../support/fuzz-seed';

describe('truncateIp', () => {
  it('keeps the /24 of an IPv4 address', () => {
    expect(truncateIp('203.0.113.77')).toBe('203.0.113.0');
    expect(truncateIp('10.1.2.255')).toBe('10.1.2.0');
    expect(truncateIp(' 192.168.0.1 ')).toBe('192.168.0.0');
    expect(truncateIp('203.0.113.0')).toBe('203.0.113.0');
  });

  it('keeps the /48 of an IPv6 address, written the short way', () => {
    expect(truncateIp('2001:db8:85a3:8d3:1319:8a2e:370:7348')).toBe('2001:db8:85a3::');
    expect(truncateIp('2001:0DB8:85A3:0000:0000:8A2E:0370:7334')).toBe('2001:db8:85a3::');
    expect(truncateIp('2001:db8::1')).toBe('2001:db8::');
    expect(truncateIp('::1')).toBe('::');
    expect(truncateIp('::')).toBe('::');
    expect(truncateIp('2001:db8:0:1::5')).toBe('2001:db8::');
    expect(truncateIp('1:2:3:4:5:6:7.8.9.10')).toBe('1:2:3::');
  });

  it('drops the zone of a link-local address', () => {
    expect(truncateIp('fe80::1ff:fe23:4567:890a%eth0')).toBe('fe80::');
  });

  it('treats an IPv4-mapped IPv6 address as the IPv4 client it is', () => {
    expect(truncateIp('::ffff:203.0.113.77')).toBe('::ffff:203.0.113.0');
    expect(truncateIp('::FFFF:cb00:714d')).toBe('::ffff:203.0.113.0');
  });

  it('gives null for what is not an IP address (it is then not kept)', () => {
    for (const value of ['', 'localhost', '203.0.113.77:8080', '203.0.113.77, 10.0.0.1', '256.1.1.1', '1.2.3', 'gibberish::zz', 42, null, undefined, { ip: '1.2.3.4' }]) {
      expect(truncateIp(value)).toBeNull();
    }
  });

  const fuzz = fuzzRun('test/core/ip-truncation.test.ts');

  it('gives an address that is valid, idempotent, and zero past the prefix, for any IPv4 or IPv6 address', () => {
    fuzz.check(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (address) => {
        const truncated = truncateIp(address)!;
        expect(isIP(truncated)).toBe(isIP(address));
        expect(truncateIp(truncated)).toBe(truncated);
        expect(bitsPastPrefix(truncated)).toBe(0);
        // The kept prefix is the address's own.
        expect(prefixOf(truncated)).toBe(prefixOf(address));
      }),
      500,
    );
  });
});

// A reference written from the definition: the address as a bit string (IPv4 and IPv4-mapped as the 32 IPv4 bits).
function bits(address: string): { bits: string; prefix: number } {
  const toBits = (n: number, width: number) => n.toString(2).padStart(width, '0');
  if (isIP(address) === 4) return { bits: address.split('.').map((o) => toBits(Number(o), 8)).join(''), prefix: 24 };
  const [head = '', tail = ''] = address.toLowerCase().split('::');
  const groupsOf = (part: string) => (part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? g.split('.').map(Number).reduce<number[]>((acc, o, i) => (i % 2 === 0 ? [...acc, o * 256] : [...acc.slice(0, -1), acc[acc.length - 1]! + o]), []) : [parseInt(g, 16)])));
  const h = groupsOf(head);
  const t = groupsOf(tail);
  const groups = address.includes('::') ? [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t] : h;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return { bits: toBits(groups[6]!, 16) + toBits(groups[7]!, 16), prefix: 24 };
  return { bits: groups.map((g) => toBits(g, 16)).join(''), prefix: 48 };
}
const bitsPastPrefix = (address: string) => [...bits(address).bits.slice(bits(address).prefix)].filter((b) => b === '1').length;
const prefixOf = (address: string) => bits(address).bits.slice(0, bits(address).prefix);

describe('truncateEventIp', () => {
  const event = { context: { ip: '198.51.100.23', userAgent: 'Mozilla/5.0', locale: 'fr-FR' }, properties: { ip: '198.51.100.23', product_id: 'p1' } };

  it("truncates the context's IP and leaves the rest, the event's own `ip` property included", () => {
    const truncated = truncateEventIp(event);
    expect(truncated.context).toEqual({ ip: '198.51.100.0', userAgent: 'Mozilla/5.0', locale: 'fr-FR' });
    expect(truncated.properties).toEqual({ ip: '198.51.100.23', product_id: 'p1' });
    expect(event.context.ip).toBe('198.51.100.23'); // the input is not modified
  });

  it("truncates an ESP webhook's reader IP in the properties", () => {
    const fromWebhook = truncateEventIp({ context: { source: 'sendgrid-webhook' }, properties: { ip: '2001:db8:85a3:8d3::7', url: 'https://shop.example/' } });
    expect(fromWebhook.properties).toEqual({ ip: '2001:db8:85a3::', url: 'https://shop.example/' });
  });

  it('drops an IP it cannot read, and leaves an event without one as it is', () => {
    expect(truncateEventIp({ context: { ip: 'unknown', page: { path: '/' } }, properties: {} }).context).toEqual({ page: { path: '/' } });
    const without = { context: { locale: 'en' }, properties: {} };
    expect(truncateEventIp(without)).toBe(without);
  });
});
