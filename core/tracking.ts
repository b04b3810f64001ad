// Signed tokens for tracked links, open pixels and one-click unsubscribe links, and the UTM tags a click redirect
// adds; shared by send-time link rewriting and the server's /t/ and /u/ endpoints so both speak one format.
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { BadInputError } from './errors';

/** What a tracked link carries: whose email, which send, and where the click goes. */
export interface ClickClaims {
  customerId: string;
  deliveryKey: string;
  flowId: string;
  stepId: string;
  variant?: string;
  url: string;
}

/** What an open pixel carries: whose email and which send. */
export interface OpenClaims {
  customerId: string;
  deliveryKey: string;
  flowId: string;
  stepId: string;
  variant?: string;
}

/** What an unsubscribe link carries: who opts out, and which send their link came from. */
export interface UnsubscribeClaims {
  customerId: string;
  deliveryKey: string;
  flowId: string;
}

/** A tracking token was malformed, forged, altered, or of another kind. The server answers 400. */
export class InvalidTrackingTokenError extends BadInputError {
  override readonly code = 'invalid_tracking_token';
  override name = 'InvalidTrackingTokenError';
}

type Kind = 'c' | 'o' | 'u';
const KINDS: readonly Kind[] = ['c', 'o', 'u'];
const KIND_NAME: Record<Kind, string> = { c: 'click', o: 'open', u: 'unsubscribe' };
/** "a click token", "an open token", "an unsubscribe token" */
const A_KIND: Record<Kind, string> = { c: 'a click', o: 'an open', u: 'an unsubscribe' };

/** Short keys keep tokens (and so tracked URLs) short. */
interface Payload {
  k: Kind;
  c: string;
  d: string;
  f: string;
  /** step, on click and open tokens */
  s?: string;
  v?: string;
  u?: string;
}

/** 16 bytes (128 bits) of HMAC-SHA256 is ample against forgery and keeps the URL short. */
const MAC_BYTES = 16;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** The secret as a KeyObject, made once per secret: a key object saves the key setup on every link signed. */
const secretKeys = new Map<string, KeyObject>();

function secretKey(secret: string): KeyObject {
  let key = secretKeys.get(secret);
  if (!key) {
    if (secretKeys.size >= 16) secretKeys.clear();
    secretKeys.set(secret, (key = createSecretKey(Buffer.from(secret, 'utf8'))));
  }
  return key;
}

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** MAC_BYTES (16) in base64url: 21 whole characters and one that holds the last byte's 2 remaining bits. */
const MAC_CHARS = Math.ceil((MAC_BYTES * 4) / 3);

function mac(secret: string, kind: Kind, payloadSegment: string): string {
  // The kind is part of the MAC input, so a click token can never verify as an open token (or back). The segment is
  // base64url (ASCII, checked before a token is verified), so latin1 reads it as UTF-8 would, without the transcoding.
  const full = createHmac('sha256', secretKey(secret)).update(kind + payloadSegment, 'latin1').digest('base64url');
  // The same text as base64url of the first 16 bytes, without the Buffer copies: keep the last character's top
  // 2 bits (its low 4 would come from byte 17).
  const last = BASE64URL_ALPHABET.indexOf(full[MAC_CHARS - 1]!) & 0b110000;
  return full.slice(0, MAC_CHARS - 1) + BASE64URL_ALPHABET[last]!;
}

function isHttpUrl(url: string): boolean {
  if (!/^https?:\/\//i.test(url)) return false;
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:';
  } catch {
    return false;
  }
}

function requireSecret(secret: string): void {
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new BadInputError('the tracking secret is empty; set one before signing or verifying tracking tokens', 'secret');
  }
}

function requireText(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new BadInputError(`expected a non-empty string, got ${JSON.stringify(value) ?? String(value)}`, field);
  }
  return value;
}

function sign(secret: string, kind: Kind, claims: UnsubscribeClaims & { stepId?: string; variant?: string; url?: string }): string {
  requireSecret(secret);
  const payload: Payload = {
    k: kind,
    c: requireText(claims.customerId, 'customerId'),
    d: requireText(claims.deliveryKey, 'deliveryKey'),
    f: requireText(claims.flowId, 'flowId'),
  };
  // An unsubscribe token names the send, not a step: it opts the customer out whichever step it came from.
  if (kind !== 'u') {
    payload.s = requireText(claims.stepId, 'stepId');
    if (claims.variant !== undefined) payload.v = requireText(claims.variant, 'variant');
  }
  if (kind === 'c') {
    const url = requireText(claims.url, 'url');
    if (!isHttpUrl(url)) throw new BadInputError(`only http(s) links can be tracked, got ${JSON.stringify(url)}`, 'url');
    payload.u = url;
  }
  const segment = Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url');
  return `${segment}.${mac(secret, kind, segment)}`;
}

function verify(secret: string, kind: Kind, token: unknown): Payload {
  requireSecret(secret);
  if (typeof token !== 'string' || token.length === 0) {
    throw new InvalidTrackingTokenError(`expected ${A_KIND[kind]} token, got ${token === '' ? 'an empty string' : typeof token}`);
  }
  const parts = token.split('.');
  if (parts.length !== 2 || !BASE64URL.test(parts[0] ?? '') || !BASE64URL.test(parts[1] ?? '')) {
    throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: expected <payload>.<signature> in base64url`);
  }
  const [segment, givenMac] = parts as [string, string];
  // Compare the encoded MAC text, not decoded bytes: base64url decoding ignores a last character's spare
  // bits, so comparing bytes would accept some altered tokens.
  if (!macMatches(givenMac, mac(secret, kind, segment))) {
    const other = KINDS.find((k) => k !== kind && macMatches(givenMac, mac(secret, k, segment)));
    if (other !== undefined) throw new InvalidTrackingTokenError(`this is ${A_KIND[other]} token, not ${A_KIND[kind]} token`);
    throw new InvalidTrackingTokenError(`the ${KIND_NAME[kind]} token's signature does not match: it was altered or signed with another secret`);
  }
  // The MAC vouches for the bytes; the checks below guard against tokens we signed with a different shape.
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: the payload is not JSON`);
  }
  return checkPayload(payload, kind);
}

function macMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

function checkPayload(payload: unknown, kind: Kind): Payload {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: the payload is not an object`);
  }
  const p = payload as Record<string, unknown>;
  if (p.k !== kind) {
    throw new InvalidTrackingTokenError(`expected ${A_KIND[kind]} token, the payload says kind ${JSON.stringify(p.k)}`);
  }
  for (const key of kind === 'u' ? (['c', 'd', 'f'] as const) : (['c', 'd', 'f', 's'] as const)) {
    if (typeof p[key] !== 'string' || p[key] === '') {
      throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: payload field "${key}" is missing`);
    }
  }
  if (p.v !== undefined && typeof p.v !== 'string') {
    throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: payload field "v" is not a string`);
  }
  if (kind === 'c' && (typeof p.u !== 'string' || !isHttpUrl(p.u))) {
    throw new InvalidTrackingTokenError('the click token does not carry an http(s) url');
  }
  return p as unknown as Payload;
}

function openClaimsOf(p: Payload): OpenClaims {
  const claims: OpenClaims = { customerId: p.c, deliveryKey: p.d, flowId: p.f, stepId: p.s as string };
  if (p.v !== undefined) claims.variant = p.v;
  return claims;
}

export function signClickToken(secret: string, claims: ClickClaims): string {
  return sign(secret, 'c', claims);
}

/** Throws InvalidTrackingTokenError unless `token` is an unaltered click token signed with `secret`. */
export function verifyClickToken(secret: string, token: string): ClickClaims {
  const p = verify(secret, 'c', token);
  return { ...openClaimsOf(p), url: p.u as string };
}

export function signOpenToken(secret: string, claims: OpenClaims): string {
  return sign(secret, 'o', claims);
}

/** Throws InvalidTrackingTokenError unless `token` is an unaltered open token signed with `secret`. */
export function verifyOpenToken(secret: string, token: string): OpenClaims {
  return openClaimsOf(verify(secret, 'o', token));
}

export function signUnsubscribeToken(secret: string, claims: UnsubscribeClaims): string {
  return sign(secret, 'u', { customerId: claims.customerId, deliveryKey: claims.deliveryKey, flowId: claims.flowId });
}

/** Throws InvalidTrackingTokenError unless `token` is an unaltered unsubscribe token signed with `secret`. */
export function verifyUnsubscribeToken(secret: string, token: string): UnsubscribeClaims {
  const p = verify(secret, 'u', token);
  return { customerId: p.c, deliveryKey: p.d, flowId: p.f };
}

function trimSlash(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '');
}

/** The tracked link that replaces `claims.url` in an email: `${baseUrl}/t/c/<token>`. */
export function trackedClickUrl(baseUrl: string, secret: string, claims: ClickClaims): string {
  return `${trimSlash(baseUrl)}/t/c/${signClickToken(secret, claims)}`;
}

/**
 * One email's tracked links: the claims are checked and encoded once, then each link costs its URL check and one
 * HMAC. Gives exactly what trackedClickUrl gives for the same claims and URL.
 */
export function clickUrlSigner(baseUrl: string, secret: string, claims: Omit<ClickClaims, 'url'>): (url: string) => string {
  requireSecret(secret);
  const payload: Payload = {
    k: 'c',
    c: requireText(claims.customerId, 'customerId'),
    d: requireText(claims.deliveryKey, 'deliveryKey'),
    f: requireText(claims.flowId, 'flowId'),
    s: requireText(claims.stepId, 'stepId'),
  };
  if (claims.variant !== undefined) payload.v = requireText(claims.variant, 'variant');
  // JSON.stringify keeps insertion order, so the payload with `u` appended is this prefix, the URL, and '}'.
  const prefix = `${JSON.stringify(payload).slice(0, -1)},"u":`;
  const base = `${trimSlash(baseUrl)}/t/c/`;
  return (url) => {
    requireText(url, 'url');
    if (!isHttpUrl(url)) throw new BadInputError(`only http(s) links can be tracked, got ${JSON.stringify(url)}`, 'url');
    const segment = Buffer.from(`${prefix}${JSON.stringify(url)}}`, 'utf8').toString('base64url');
    return `${base}${segment}.${mac(secret, 'c', segment)}`;
  };
}

/** The open pixel's address: `${baseUrl}/t/o/<token>.gif` (the server strips `.gif` before verifying). */
export function openPixelUrl(baseUrl: string, secret: string, claims: OpenClaims): string {
  return `${trimSlash(baseUrl)}/t/o/${signOpenToken(secret, claims)}.gif`;
}

/** The unsubscribe link of an email: `${baseUrl}/u/<token>`; GET shows a confirm page, POST (RFC 8058 one-click) opts out. */
export function unsubscribeUrl(baseUrl: string, secret: string, claims: UnsubscribeClaims): string {
  return `${trimSlash(baseUrl)}/u/${signUnsubscribeToken(secret, claims)}`;
}

/**
 * The RFC 8058 one-click headers for a marketing email. `url` goes inside the angle brackets verbatim, so it must be
 * an http(s) URL with no whitespace, angle brackets or commas (which would end or split the header's URI list).
 * Mailbox providers act on one-click only for https; http is accepted for local development.
 */
export function listUnsubscribeHeaders(url: string): { 'List-Unsubscribe': string; 'List-Unsubscribe-Post': string } {
  if (!isHttpUrl(url) || /[\s<>,]/.test(url)) {
    throw new BadInputError(`a one-click unsubscribe link must be an http(s) URL without spaces, '<', '>' or ',', got ${JSON.stringify(url)}`, 'url');
  }
  return { 'List-Unsubscribe': `<${url}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' };
}

export interface UtmTags {
  flowId: string;
  stepId: string;
  variant?: string;
  /** utm_source; defaults to 'microflows' */
  source?: string;
}

function encodeQueryValue(value: string): string {
  // '/' is legal in a query and keeps `step/variant` readable in analytics reports.
  return encodeURIComponent(value).replace(/%2F/gi, '/');
}

function decodeQueryName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}

/**
 * Adds utm_source/medium/campaign/content to an http(s) link. Parameters already in the link win (the
 * marketer chose them); the rest of the query, its order and the fragment are kept byte for byte.
 * Other links (mailto:, tel:, #anchors, relative paths) are returned unchanged.
 */
export function withUtm(url: string, tags: UtmTags): string {
  if (!/^https?:\/\//i.test(url)) return url;
  const hashAt = url.indexOf('#');
  const beforeHash = hashAt === -1 ? url : url.slice(0, hashAt);
  const fragment = hashAt === -1 ? '' : url.slice(hashAt);
  const queryAt = beforeHash.indexOf('?');
  const path = queryAt === -1 ? beforeHash : beforeHash.slice(0, queryAt);
  const query = queryAt === -1 ? '' : beforeHash.slice(queryAt + 1);

  const present = new Set(
    query
      .split('&')
      .filter((part) => part !== '')
      .map((part) => decodeQueryName(part.split('=')[0] ?? '')),
  );
  const wanted: Array<[string, string]> = [
    ['utm_source', tags.source ?? 'microflows'],
    ['utm_medium', 'email'],
    ['utm_campaign', tags.flowId],
    ['utm_content', tags.variant ? `${tags.stepId}/${tags.variant}` : tags.stepId],
  ];
  const added = wanted.filter(([name]) => !present.has(name)).map(([name, value]) => `${name}=${encodeQueryValue(value)}`);
  if (added.length === 0) return url;
  const joiner = query === '' || query.endsWith('&') ? '' : '&';
  return `${path}?${query}${joiner}${added.join('&')}${fragment}`;
}
