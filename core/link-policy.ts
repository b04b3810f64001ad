// Which links an email may carry: an href the template author wrote is trusted as written (http(s), mailto:, tel:,
// sms:, #fragment), an href whose target comes from data must be http(s) on the link domains, and an image source
// from data must be http(s). Hrefs are read as a browser reads them, so `JaVa&#x09;Script:` is javascript: too.

/** Why a link is not rendered as a link (recorded as the render's fallback). */
export type LinkVerdict = { ok: true; url: string } | { ok: false; reason: string };

/** Schemes an author may write by hand besides http(s): they open the mail, phone or SMS app, never a page. */
const LITERAL_SCHEMES = new Set(['http', 'https', 'mailto', 'tel', 'sms']);

/** The URL parser drops these anywhere in a URL (WHATWG URL: "ASCII tab or newline"). */
const TAB_OR_NEWLINE = /[\t\n\r]/g;
/** ...and these at either end ("C0 control or space"). */
const EDGE_CONTROLS = /^[\u0000-\u0020]+|[\u0000-\u0020]+$/g;

/** An href as a browser's URL parser sees it (after the HTML attribute's entities were decoded). */
export function normalizeHref(href: string): string {
  return href.replace(TAB_OR_NEWLINE, '').replace(EDGE_CONTROLS, '');
}

/** The scheme, lower-cased ("javascript", "https"), or null for a relative reference (`/x`, `x`, `//host/x`, `#top`). */
export function schemeOf(href: string): string | null {
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(normalizeHref(href));
  return match ? match[1]!.toLowerCase() : null;
}

function describe(href: string): string {
  const shown = href.length > 80 ? `${href.slice(0, 77)}...` : href;
  return JSON.stringify(shown);
}

/**
 * Link domains as configured: lower-cased, without a leading `*.` or `.` and a trailing `.`; a domain allows its
 * subdomains (`shop.example` allows `www.shop.example`).
 */
export function normalizeLinkDomains(domains: readonly string[]): readonly string[] {
  // Kept per list: a send passes the configuration's list each time, and the verdicts below are kept per list.
  let normalized = normalizedLists.get(domains);
  if (!normalized) {
    normalized = [...new Set(domains.map((d) => d.trim().toLowerCase().replace(/^\*?\./, '').replace(/\.$/, '')).filter((d) => d !== ''))];
    normalizedLists.set(domains, normalized);
  }
  return normalized;
}

const normalizedLists = new WeakMap<readonly string[], readonly string[]>();

/**
 * Verdicts are kept: the same product and shop URLs recur across recipients, and parsing a URL costs more than the
 * rest of a link's render. Bounded; cleared when full.
 */
const MAX_KEPT = 10_000;

function kept(cache: Map<string, LinkVerdict>, href: string, decide: (href: string) => LinkVerdict): LinkVerdict {
  let verdict = cache.get(href);
  if (verdict === undefined) {
    if (cache.size >= MAX_KEPT) cache.clear();
    cache.set(href, (verdict = decide(href)));
  }
  return verdict;
}

const literalVerdicts = new Map<string, LinkVerdict>();
const dataVerdicts = new WeakMap<readonly string[], Map<string, LinkVerdict>>();
const imageVerdicts = new Map<string, LinkVerdict>();

/** The host of an absolute http(s) URL, the default link domain (the shop's); null when `url` is not one. */
export function linkDomainOf(url: string): string | null {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.hostname.toLowerCase() : null;
  } catch {
    return null;
  }
}

/** Whether `host` is one of `domains` (already normalized) or a subdomain of one. */
export function hostAllowed(host: string, domains: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return domains.some((d) => h === d || (h.length > d.length && h.endsWith(d) && h[h.length - d.length - 1] === '.'));
}

function parseHttp(href: string): URL | null {
  try {
    const parsed = new URL(href);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed : null;
  } catch {
    return null;
  }
}

/** An href the template author wrote as is (no data in it): trusted, if its scheme is one a link may have. */
export function checkLiteralLink(href: string): LinkVerdict {
  return kept(literalVerdicts, href, decideLiteralLink);
}

function decideLiteralLink(href: string): LinkVerdict {
  const url = normalizeHref(href);
  const scheme = schemeOf(url);
  if (scheme === null) {
    if (url.startsWith('#')) return { ok: true, url };
    return { ok: false, reason: `the link ${describe(href)} is relative: an email has no page to resolve it against; write the full https:// address` };
  }
  if (!LITERAL_SCHEMES.has(scheme)) return { ok: false, reason: `a ${scheme}: link is never rendered as a link; only http(s), mailto:, tel: and sms: are` };
  if ((scheme === 'http' || scheme === 'https') && !parseHttp(url)) return { ok: false, reason: `the link ${describe(href)} is not a valid URL` };
  return { ok: true, url };
}

/**
 * An href whose target comes from data (any `{{…}}` in it): only an http(s) URL on `domains` is a link, given in the
 * parser's own form (`parsed.href`), so what a browser follows is what was checked.
 */
export function checkDataLink(href: string, domains: readonly string[]): LinkVerdict {
  let cache = dataVerdicts.get(domains);
  if (!cache) dataVerdicts.set(domains, (cache = new Map()));
  return kept(cache, href, (h) => decideDataLink(h, domains));
}

function decideDataLink(href: string, domains: readonly string[]): LinkVerdict {
  const url = normalizeHref(href);
  if (url === '') return { ok: false, reason: 'the link from data is empty' };
  const parsed = parseHttp(url);
  if (!parsed) {
    const scheme = schemeOf(url);
    return { ok: false, reason: scheme === null ? `the link from data ${describe(href)} is not an absolute http(s) URL` : `the link from data is ${scheme}:, not http(s)` };
  }
  if (!hostAllowed(parsed.hostname, domains)) {
    return { ok: false, reason: `the link from data goes to ${parsed.hostname}, which is not on the link domains (${domains.join(', ') || 'none'}); add it to MICROFLOWS_LINK_DOMAINS if it is yours` };
  }
  if (parsed.username !== '' || parsed.password !== '') return { ok: false, reason: `the link from data to ${parsed.hostname} carries a user name or password` };
  return { ok: true, url: parsed.href };
}

/** An image source from data: only http(s) (any host: images are often on a CDN; a data: or javascript: URL is not). */
export function checkImageSource(src: string): LinkVerdict {
  return kept(imageVerdicts, src, decideImageSource);
}

function decideImageSource(src: string): LinkVerdict {
  const url = normalizeHref(src);
  const parsed = parseHttp(url);
  if (!parsed) {
    const scheme = schemeOf(url);
    return { ok: false, reason: scheme === null ? `the image source from data ${describe(src)} is not an absolute http(s) URL` : `the image source from data is ${scheme}:, not http(s)` };
  }
  return { ok: true, url: parsed.href };
}
