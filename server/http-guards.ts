// What every response of the HTTP surface gets before any route: the Host header checked against an allowlist (a
// DNS-rebinding page cannot reach a developer's server through a name it controls) and security headers from helmet,
// with a strict Content-Security-Policy on every HTML page (no script at all; the previews and unsubscribe pages
// need inline styles and remote images only).
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import helmet from 'helmet';
import { MicroflowsError } from '../core/errors';

/** The Host is not one this server answers to. */
export class HostNotAllowedError extends MicroflowsError {
  override readonly status = 421;
  override readonly code = 'host_not_allowed';
  override name = 'HostNotAllowedError';
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];

function hostNameOfUrl(url: string | null | undefined): string | null {
  if (!url) return null;
  try {
    return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  } catch {
    return null;
  }
}

/**
 * The host names the server answers to, or null for any (MICROFLOWS_ALLOWED_HOSTS=*). By default: the loopback names,
 * HOST (unless a wildcard address), and the hosts of MICROFLOWS_PUBLIC_URL and MICROFLOWS_SHOP_URL.
 */
export function allowedHostsOf(config: { allowedHosts?: string[] | null; host?: string; adminHost?: string | null; publicUrl?: string | null; shopUrl?: string }): Set<string> | null {
  if (config.allowedHosts) {
    if (config.allowedHosts.includes('*')) return null;
    return new Set(config.allowedHosts.map((h) => h.replace(/^\[(.*)\]$/, '$1').toLowerCase()));
  }
  const hosts = new Set(LOOPBACK_NAMES);
  for (const host of [config.host, config.adminHost]) {
    if (host && host !== '0.0.0.0' && host !== '::') hosts.add(host.replace(/^\[(.*)\]$/, '$1').toLowerCase());
  }
  for (const url of [config.publicUrl, config.shopUrl]) {
    const name = hostNameOfUrl(url);
    if (name) hosts.add(name);
  }
  return hosts;
}

/** The name in a Host header, without its port; lower-cased, IPv6 without brackets. */
export function hostName(header: string | undefined): string | null {
  if (!header) return null;
  const value = header.trim().toLowerCase();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(value);
  if (bracketed) return bracketed[1]!;
  const colon = value.lastIndexOf(':');
  if (colon !== -1 && value.indexOf(':') === colon) return value.slice(0, colon);
  return value;
}

/** Throws HostNotAllowedError unless the request's Host is allowed (/api/health is exempt: probes use IPs). */
export function checkHost(req: IncomingMessage, path: string, allowed: Set<string> | null): void {
  if (allowed === null || path === '/api/health') return;
  const name = hostName(req.headers.host);
  if (name !== null && allowed.has(name)) return;
  throw new HostNotAllowedError(
    `this server does not answer to Host ${JSON.stringify(req.headers.host ?? '')}: add it to MICROFLOWS_ALLOWED_HOSTS (comma-separated; ` +
      `by default the loopback names, HOST and the hosts of MICROFLOWS_PUBLIC_URL and MICROFLOWS_SHOP_URL)`,
  );
}

export function requireAllowedHost(allowed: Set<string> | null): RequestHandler {
  return (req, _res, next) => {
    try {
      checkHost(req, req.path, allowed);
      next();
    } catch (err) {
      next(err);
    }
  };
}

/** The policy on every response: no script, no plugin, no framing, forms only to this server. */
export const CSP_DIRECTIVES: Record<string, string[]> = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'none'"],
  scriptSrcAttr: ["'none'"],
  objectSrc: ["'none'"],
  styleSrc: ["'unsafe-inline'", 'https:'],
  fontSrc: ['https:', 'data:'],
  imgSrc: ["'self'", 'https:', 'http:', 'data:'],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  baseUri: ["'none'"],
};

/**
 * helmet's headers with the strict CSP. The public surface lets other origins load its resources (the open pixel is
 * an image in a mail client's page); the admin surface keeps them to itself.
 */
export function securityHeaders(surface: 'public' | 'admin'): RequestHandler {
  return helmet({
    contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES },
    crossOriginResourcePolicy: { policy: surface === 'public' ? 'cross-origin' : 'same-origin' },
    referrerPolicy: { policy: 'no-referrer' },
  });
}
