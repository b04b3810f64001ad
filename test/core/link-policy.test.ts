// The link policy: which hrefs an email may carry as links, read as a browser reads them. Literal hrefs are the
// author's (http(s), mailto:, tel:, sms:, #fragment), hrefs from data must be http(s) on the link domains, image
// sources from data http(s). Generated hostile hrefs never come out as a live link off the domains.
import fc from 'fast-check';
import { checkDataLink, checkImageSource, checkLiteralLink, hostAllowed, linkDomainOf, normalizeHref, normalizeLinkDomains, schemeOf } from '../../core/link-policy';
import { fuzzRun } from '../support/fuzz-seed';

const fuzz = fuzzRun('test/core/link-policy.test.ts');

const DOMAINS = normalizeLinkDomains(['Shop.Example', '*.cdn-shop.example.', 'mail.other.example']);

describe('normalizing', () => {
  test('link domains are lower-cased, without *. or a trailing dot, each once', () => {
    expect(DOMAINS).toEqual(['shop.example', 'cdn-shop.example', 'mail.other.example']);
    expect(normalizeLinkDomains(['a.example', 'A.example', ' ', ''])).toEqual(['a.example']);
  });

  test('the shop URL gives its host as the default link domain; a non-http(s) URL gives none', () => {
    expect(linkDomainOf('https://Shop.Example:8443/path')).toBe('shop.example');
    expect(linkDomainOf('ftp://shop.example')).toBeNull();
    expect(linkDomainOf('not a url')).toBeNull();
  });

  test('an href as the URL parser reads it: tabs and newlines dropped anywhere, controls and spaces at the ends', () => {
    expect(normalizeHref(' \u0000\tjava\nscr\ript:alert(1)\u001f ')).toBe('javascript:alert(1)');
    expect(schemeOf('JaVa\tScRiPt:alert(1)')).toBe('javascript');
    expect(schemeOf('//evil.example/x')).toBeNull();
    expect(schemeOf('#top')).toBeNull();
  });

  test('a domain allows itself and its subdomains, not look-alikes', () => {
    expect(hostAllowed('shop.example', DOMAINS)).toBe(true);
    expect(hostAllowed('www.shop.example', DOMAINS)).toBe(true);
    expect(hostAllowed('WWW.SHOP.EXAMPLE.', DOMAINS)).toBe(true);
    expect(hostAllowed('evilshop.example', DOMAINS)).toBe(false);
    expect(hostAllowed('shop.example.evil.example', DOMAINS)).toBe(false);
    expect(hostAllowed('other.example', DOMAINS)).toBe(false);
    expect(hostAllowed('shop.example', [])).toBe(false);
  });
});

describe('literal hrefs (the template author wrote them)', () => {
  test.each(['https://anywhere.example/x?a=1&b=2', 'http://shop.example', 'mailto:help@shop.example', 'tel:+441234567', 'sms:+441234567', '#top'])('%s is a link as written', (href) => {
    expect(checkLiteralLink(href)).toEqual({ ok: true, url: href });
  });

  test.each([
    ['javascript:alert(1)', 'a javascript: link is never rendered as a link'],
    [' JaVa\tScRiPt:alert(1)', 'a javascript: link is never rendered as a link'],
    ['data:text/html,<script>alert(1)</script>', 'a data: link is never rendered'],
    ['vbscript:msgbox(1)', 'a vbscript: link is never rendered'],
    ['/account', 'is relative'],
    ['https://', 'is not a valid URL'],
  ])('%j is refused (%s)', (href, reason) => {
    const verdict = checkLiteralLink(href);
    expect(verdict.ok).toBe(false);
    expect(!verdict.ok && verdict.reason).toContain(reason);
  });
});

describe('hrefs from data', () => {
  test.each([
    ['https://shop.example/cart', 'https://shop.example/cart'],
    ['https://www.shop.example/p/1?x=1#y', 'https://www.shop.example/p/1?x=1#y'],
    [' https://SHOP.example/a b ', 'https://shop.example/a%20b'],
    ['https:shop.example/cart', 'https://shop.example/cart'],
    ['https://cdn-shop.example', 'https://cdn-shop.example/'],
  ])('%j is a link, in the parser’s own form %j', (href, url) => {
    expect(checkDataLink(href, DOMAINS)).toEqual({ ok: true, url });
  });

  test.each([
    ['javascript:alert(1)', 'is javascript:, not http(s)'],
    ['java\tscript:alert(1)', 'is javascript:, not http(s)'],
    ['data:text/html,<script>alert(1)</script>', 'is data:, not http(s)'],
    ['vbscript:msgbox(1)', 'is vbscript:, not http(s)'],
    ['mailto:a@shop.example', 'is mailto:, not http(s)'],
    ['//evil.example/x', 'is not an absolute http(s) URL'],
    ['/cart', 'is not an absolute http(s) URL'],
    ['', 'is empty'],
    ['https://evil.example/x', 'goes to evil.example, which is not on the link domains (shop.example, cdn-shop.example, mail.other.example)'],
    ['https://shop.example.evil.example/', 'goes to shop.example.evil.example'],
    ['https://shop.example@evil.example/', 'goes to evil.example'],
    ['https://evil.example\\@shop.example/', 'goes to evil.example'],
    ['https://user:pw@shop.example/', 'carries a user name or password'],
  ])('%j is refused (%s)', (href, reason) => {
    const verdict = checkDataLink(href, DOMAINS);
    expect(verdict.ok).toBe(false);
    expect(!verdict.ok && verdict.reason).toContain(reason);
  });

  test('with no link domains, no link from data is a link', () => {
    expect(checkDataLink('https://shop.example/', []).ok).toBe(false);
  });
});

describe('image sources from data', () => {
  test('http(s) on any host is an image; data:, javascript: and relative sources are not', () => {
    expect(checkImageSource('https://img.cdn.example/a.png')).toEqual({ ok: true, url: 'https://img.cdn.example/a.png' });
    for (const src of ['data:image/svg+xml,<svg onload=alert(1)>', 'javascript:alert(1)', '/a.png', '']) expect(checkImageSource(src).ok).toBe(false);
  });
});

describe('generated hrefs', () => {
  /** Written from the definition, sharing nothing with the module: what a browser would navigate to, or null. */
  function browserTarget(href: string): URL | null {
    let text = '';
    for (const ch of href) if (ch !== '\t' && ch !== '\n' && ch !== '\r') text += ch;
    while (text.length > 0 && text.charCodeAt(0) <= 0x20) text = text.slice(1);
    while (text.length > 0 && text.charCodeAt(text.length - 1) <= 0x20) text = text.slice(0, -1);
    try {
      return new URL(text);
    } catch {
      return null;
    }
  }

  const piece = fc.constantFrom('java', 'script', ':', '\t', '\n', ' ', '\u0000', '//', '/', '\\', '@', 'evil.example', '.', 'alert(1)', '%0a', '&#x09;', 'text/html,', '#', '?');
  const hostile = fc
    .tuple(
      fc.constantFrom('', ' ', '\t', '\n', '\u0000', '\u001f'),
      fc.constantFrom('https', 'http', 'HTTPS', 'ht\ntps', 'javascript', 'JaVa\tScRiPt', 'data', 'vbscript', 'mailto', 'tel', ''),
      fc.constantFrom('://', ':', ':/', ':\\\\', '//', ':/\\', ''),
      fc.constantFrom('', 'user:pw@', 'shop.example@', 'a@'),
      fc.constantFrom('shop.example', 'www.shop.example', 'evil.example', 'shop.example.evil.example', 'evilshop.example', 'SHOP.EXAMPLE', 'shop.example.', ''),
      fc.array(piece, { maxLength: 6 }),
    )
    .map(([lead, scheme, sep, user, host, rest]) => `${lead}${scheme}${sep}${user}${host}${rest.join('')}`);

  test('a link from data that passes is http(s) on the link domains, as a browser reads what is emitted', () => {
    fuzz.check(
      fc.property(hostile, (href) => {
        const verdict = checkDataLink(href, DOMAINS);
        if (!verdict.ok) return;
        const target = browserTarget(verdict.url);
        expect(target).not.toBeNull();
        expect(['http:', 'https:']).toContain(target!.protocol);
        // A fully qualified name (trailing dot) is the same host.
        const host = target!.hostname.replace(/\.$/, '');
        expect(DOMAINS.some((d) => host === d || host.endsWith(`.${d}`))).toBe(true);
      }),
      2000,
    );
  });

  test('a literal link that passes never runs script nor loads a document from data', () => {
    fuzz.check(
      fc.property(hostile, (href) => {
        const verdict = checkLiteralLink(href);
        if (!verdict.ok) return;
        // A URL the parser cannot read (a #fragment, `tel://x\\`) navigates nowhere.
        const target = browserTarget(verdict.url);
        if (target !== null) expect(['http:', 'https:', 'mailto:', 'tel:', 'sms:']).toContain(target.protocol);
      }),
      2000,
    );
  });
});
