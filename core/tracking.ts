// Tokens for tracked links, open pixels and one-click unsubscribe links, and the UTM tags a click redirect adds;
// shared by send-time link rewriting and the server's /t/ and /u/ endpoints so both speak one format. A token is
// its claims encrypted with AES-256-GCM (so a link shows no customer id or delivery key, and cannot be altered) with
// an expiry inside. Tokens of the earlier format (readable payload and an HMAC) are still read: unsubscribe links in
// emails already sent must keep working.
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hkdfSync, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { BadInputError } from './errors';

/** What a tracked link carries: whose email, which send, and where the click goes. */
export interface ClickClaims {
  customerId: string;
  deliveryKey: string;
  flowId: string;
  stepId: string;
  variant?: string;
  url: string;
  /**
   * true: `url` is the template's literal text, redirected to as written. Otherwise it came from data, and the
   * redirect checks it against the link domains again (they may have changed since the send).
   */
  literal?: boolean;
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

/** A token that verified: its claims, and whether it is past its expiry. */
export interface VerifiedToken<T> {
  claims: T;
  /** When the token stops being honoured (epoch ms); null for a token of the earlier format, which carried none. */
  expiresAt: number | null;
  /**
   * Past its expiry, or of the earlier format: a click lands on the shop's home page and an open counts nothing,
   * while an unsubscribe still unsubscribes (the law wants that link to keep working).
   */
  expired: boolean;
}

/** A tracking token was malformed, forged, altered, or of another kind. The server answers 400. */
export class InvalidTrackingTokenError extends BadInputError {
  override readonly code = 'invalid_tracking_token';
  override name = 'InvalidTrackingTokenError';
}

/** How long a token stays valid unless the configuration says otherwise (MICROFLOWS_TOKEN_TTL). */
export const DEFAULT_TOKEN_TTL_MS = 180 * 86_400_000;

/** When a token signed at `now` expires. */
export function tokenExpiry(now: number, ttlMs: number = DEFAULT_TOKEN_TTL_MS): number {
  return now + ttlMs;
}

/** c: click, o: open, u: unsubscribe, p: preference center. */
type Kind = 'c' | 'o' | 'u' | 'p';
const KINDS: readonly Kind[] = ['c', 'o', 'u', 'p'];
const KIND_NAME: Record<Kind, string> = { c: 'click', o: 'open', u: 'unsubscribe', p: 'preferences' };
/** "a click token", "an open token", "an unsubscribe token" */
const A_KIND: Record<Kind, string> = { c: 'a click', o: 'an open', u: 'an unsubscribe', p: 'a preferences' };
/** The kind is the cipher's associated data: a click token never decrypts as an open token (or back). */
const KIND_AAD: Record<Kind, Buffer> = { c: Buffer.from('c'), o: Buffer.from('o'), u: Buffer.from('u'), p: Buffer.from('p') };
/** Kinds whose token names the send, not a step: they act on the customer whichever step the link came from. */
const SEND_KINDS: readonly Kind[] = ['u', 'p'];

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * The AES key, derived from the signing secret once per secret (HKDF: the secret is any string, not a key). A Buffer,
 * not a KeyObject: createCipheriv sets a Buffer key up faster, and it is the most of a token's cost.
 */
const tokenKeys = new Map<string, Buffer>();

function tokenKey(secret: string): Buffer {
  let key = tokenKeys.get(secret);
  if (!key) {
    if (tokenKeys.size >= 16) tokenKeys.clear();
    tokenKeys.set(secret, (key = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), 'microflows tracking token v2 aes-256-gcm', 32))));
  }
  return key;
}

/**
 * GCM needs a nonce never used twice under one key: 96 random bits per token, drawn from a pool so a send's links
 * do not each pay a call into the system's random source.
 */
let ivPool = Buffer.alloc(0);
let ivAt = 0;

function nextIv(): Buffer {
  if (ivAt + IV_BYTES > ivPool.length) {
    ivPool = randomBytes(IV_BYTES * 512);
    ivAt = 0;
  }
  const iv = ivPool.subarray(ivAt, ivAt + IV_BYTES);
  ivAt += IV_BYTES;
  return iv;
}

function seal(secret: string, kind: Kind, plaintext: string): string {
  const iv = nextIv();
  const cipher = createCipheriv('aes-256-gcm', tokenKey(secret), iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(KIND_AAD[kind]);
  const sealed = cipher.update(plaintext, 'utf8');
  cipher.final();
  return Buffer.concat([iv, sealed, cipher.getAuthTag()]).toString('base64url');
}

/** The plaintext, or null when the token was not sealed as `kind` under `secret` (altered, forged, other kind). */
function unseal(secret: string, kind: Kind, bytes: Buffer): string | null {
  const decipher = createDecipheriv('aes-256-gcm', tokenKey(secret), bytes.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(KIND_AAD[kind]);
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
  const plaintext = decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES));
  try {
    decipher.final();
  } catch {
    return null;
  }
  return plaintext.toString('utf8');
}

/** URLs already found trackable: an email's links recur across recipients, and parsing one costs a microsecond. */
const httpUrls = new Set<string>();

function isHttpUrl(url: string): boolean {
  if (httpUrls.has(url)) return true;
  if (!/^https?:\/\//i.test(url)) return false;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return false;
  } catch {
    return false;
  }
  if (httpUrls.size >= 10_000) httpUrls.clear();
  httpUrls.add(url);
  return true;
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

/** Whole seconds keep the token short; a token never lives longer than asked. */
function expirySeconds(expiresAt: number): number {
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt) || expiresAt <= 0) {
    throw new BadInputError(`expected the expiry as epoch milliseconds, got ${JSON.stringify(expiresAt) ?? String(expiresAt)}`, 'expiresAt');
  }
  return Math.floor(expiresAt / 1000);
}

/**
 * Delivery keys are `flow/<flow>/<customer>/<run>/<step>` (workflows/flow-run.ts): the flow, customer and step are
 * in the token already, so the key goes in as the run number alone (`[rest]` when only the prefix repeats; verbatim
 * otherwise). A third of a token's length.
 */
function packDeliveryKey(d: string, c: string, f: string, s: string | undefined): string | number | [string] {
  const prefix = `flow/${f}/${c}/`;
  if (!d.startsWith(prefix)) return d;
  const rest = d.slice(prefix.length);
  const run = /^(0|[1-9]\d{0,8})\/([\s\S]*)$/.exec(rest);
  if (s !== undefined && run && run[2] === s) return Number(run[1]);
  return [rest];
}

function unpackDeliveryKey(packed: unknown, c: string, f: string, s: string | undefined): string | null {
  if (typeof packed === 'string' && packed !== '') return packed;
  if (typeof packed === 'number' && s !== undefined && Number.isSafeInteger(packed) && packed >= 0) return `flow/${f}/${c}/${packed}/${s}`;
  if (Array.isArray(packed) && packed.length === 1 && typeof packed[0] === 'string') return `flow/${f}/${c}/${packed[0]}`;
  return null;
}

/**
 * The plaintext is a JSON array, by position (keys would be a quarter of it):
 *   unsubscribe [exp, customer, delivery, flow]
 *   open        [exp, customer, delivery, flow, step, variant?]
 *   click       [exp, customer, delivery, flow, step, literal (1|0), url, variant?]
 * `exp` is epoch seconds.
 */
function plaintextPrefix(kind: Kind, expiresAt: number, claims: { customerId: string; deliveryKey: string; flowId: string; stepId?: string }): string {
  const c = requireText(claims.customerId, 'customerId');
  const d = requireText(claims.deliveryKey, 'deliveryKey');
  const f = requireText(claims.flowId, 'flowId');
  // An unsubscribe token names the send, not a step: it opts the customer out whichever step it came from.
  const s = SEND_KINDS.includes(kind) ? undefined : requireText(claims.stepId, 'stepId');
  const fields: unknown[] = [expirySeconds(expiresAt), c, packDeliveryKey(d, c, f, s), f];
  if (s !== undefined) fields.push(s);
  return JSON.stringify(fields).slice(0, -1);
}

function variantSuffix(variant: string | undefined): string {
  return variant === undefined ? '' : `,${JSON.stringify(requireText(variant, 'variant'))}`;
}

function requireTrackableUrl(url: unknown): string {
  const text = requireText(url, 'url');
  if (!isHttpUrl(text)) throw new BadInputError(`only http(s) links can be tracked, got ${JSON.stringify(text)}`, 'url');
  return text;
}

/** A token's claims as read, before the kind's shape is checked. */
interface Opened {
  fields: unknown[];
  legacy: Payload | null;
}

function open(secret: string, kind: Kind, token: unknown): Opened {
  requireSecret(secret);
  if (typeof token !== 'string' || token.length === 0) {
    throw new InvalidTrackingTokenError(`expected ${A_KIND[kind]} token, got ${token === '' ? 'an empty string' : typeof token}`);
  }
  if (token.includes('.')) return { fields: [], legacy: verifyLegacy(secret, kind, token) };
  const bytes = BASE64URL.test(token) ? Buffer.from(token, 'base64url') : null;
  // Only the canonical encoding: base64url decoding ignores a last character's spare bits, so without this check
  // some altered tokens would decode to the same bytes.
  if (!bytes || bytes.length < IV_BYTES + TAG_BYTES + 2 || bytes.toString('base64url') !== token) {
    throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: expected the token of an email link, in base64url; was it cut short?`);
  }
  const plaintext = unseal(secret, kind, bytes);
  if (plaintext === null) {
    const other = KINDS.find((k) => k !== kind && unseal(secret, k, bytes) !== null);
    if (other !== undefined) throw new InvalidTrackingTokenError(`this is ${A_KIND[other]} token, not ${A_KIND[kind]} token`);
    throw new InvalidTrackingTokenError(`the ${KIND_NAME[kind]} token's signature does not match: it was altered or signed with another secret`);
  }
  // The cipher vouches for the bytes; the checks below guard against tokens we sealed with a different shape.
  let fields: unknown;
  try {
    fields = JSON.parse(plaintext);
  } catch {
    fields = null;
  }
  if (!Array.isArray(fields)) throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: the payload is not a list of claims`);
  return { fields, legacy: null };
}

function field(fields: unknown[], index: number, kind: Kind, name: string): string {
  const value = fields[index];
  if (typeof value !== 'string' || value === '') throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: its ${name} is missing`);
  return value;
}

/** The claims every kind shares, and the expiry, from an opened token of the current format. */
function commonClaims(fields: unknown[], kind: Kind, now: number): { c: string; d: string; f: string; s: string | undefined; expiresAt: number; expired: boolean } {
  const exp = fields[0];
  if (typeof exp !== 'number' || !Number.isSafeInteger(exp)) throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: its expiry is missing`);
  const c = field(fields, 1, kind, 'customer');
  const f = field(fields, 3, kind, 'flow');
  const s = SEND_KINDS.includes(kind) ? undefined : field(fields, 4, kind, 'step');
  const d = unpackDeliveryKey(fields[2], c, f, s);
  if (d === null) throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: its delivery key is missing`);
  const expiresAt = exp * 1000;
  return { c, d, f, s, expiresAt, expired: now >= expiresAt };
}

function optionalVariant(fields: unknown[], index: number, kind: Kind): string | undefined {
  const v = fields[index];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: its variant is not a string`);
  return v;
}

export function signClickToken(secret: string, claims: ClickClaims, expiresAt: number): string {
  requireSecret(secret);
  const url = requireTrackableUrl(claims.url);
  return seal(secret, 'c', `${plaintextPrefix('c', expiresAt, claims)},${claims.literal === true ? 1 : 0},${JSON.stringify(url)}${variantSuffix(claims.variant)}]`);
}

/** Throws InvalidTrackingTokenError unless `token` is an unaltered click token signed with `secret`. */
export function verifyClickToken(secret: string, token: string, now: number): VerifiedToken<ClickClaims> {
  const opened = open(secret, 'c', token);
  if (opened.legacy) {
    // Old click tokens had no expiry: they count as expired (the click lands on the shop's home page).
    const p = opened.legacy;
    return { claims: { ...legacyOpenClaims(p), url: p.u as string, literal: false }, expiresAt: null, expired: true };
  }
  const { fields } = opened;
  const common = commonClaims(fields, 'c', now);
  const literal = fields[5];
  const url = fields[6];
  if (literal !== 0 && literal !== 1) throw new InvalidTrackingTokenError('malformed click token: it does not say where its url came from');
  if (typeof url !== 'string' || !isHttpUrl(url)) throw new InvalidTrackingTokenError('the click token does not carry an http(s) url');
  const claims: ClickClaims = { customerId: common.c, deliveryKey: common.d, flowId: common.f, stepId: common.s!, url, literal: literal === 1 };
  const variant = optionalVariant(fields, 7, 'c');
  if (variant !== undefined) claims.variant = variant;
  return { claims, expiresAt: common.expiresAt, expired: common.expired };
}

export function signOpenToken(secret: string, claims: OpenClaims, expiresAt: number): string {
  requireSecret(secret);
  return seal(secret, 'o', `${plaintextPrefix('o', expiresAt, claims)}${variantSuffix(claims.variant)}]`);
}

/** Throws InvalidTrackingTokenError unless `token` is an unaltered open token signed with `secret`. */
export function verifyOpenToken(secret: string, token: string, now: number): VerifiedToken<OpenClaims> {
  const opened = open(secret, 'o', token);
  if (opened.legacy) return { claims: legacyOpenClaims(opened.legacy), expiresAt: null, expired: true };
  const common = commonClaims(opened.fields, 'o', now);
  const claims: OpenClaims = { customerId: common.c, deliveryKey: common.d, flowId: common.f, stepId: common.s! };
  const variant = optionalVariant(opened.fields, 5, 'o');
  if (variant !== undefined) claims.variant = variant;
  return { claims, expiresAt: common.expiresAt, expired: common.expired };
}

export function signUnsubscribeToken(secret: string, claims: UnsubscribeClaims, expiresAt: number): string {
  requireSecret(secret);
  return seal(secret, 'u', `${plaintextPrefix('u', expiresAt, { customerId: claims.customerId, deliveryKey: claims.deliveryKey, flowId: claims.flowId })}]`);
}

/**
 * Throws InvalidTrackingTokenError unless `token` is an unaltered unsubscribe token signed with `secret`. Tokens of
 * the earlier format still verify (they are in emails already sent), reported as expired.
 */
export function verifyUnsubscribeToken(secret: string, token: string, now: number): VerifiedToken<UnsubscribeClaims> {
  const opened = open(secret, 'u', token);
  if (opened.legacy) {
    const p = opened.legacy;
    return { claims: { customerId: p.c, deliveryKey: p.d, flowId: p.f }, expiresAt: null, expired: true };
  }
  const common = commonClaims(opened.fields, 'u', now);
  return { claims: { customerId: common.c, deliveryKey: common.d, flowId: common.f }, expiresAt: common.expiresAt, expired: common.expired };
}

/** What a preference center link carries: whose preferences, and which send the link came from. */
export type PreferencesClaims = UnsubscribeClaims;

export function signPreferencesToken(secret: string, claims: PreferencesClaims, expiresAt: number): string {
  requireSecret(secret);
  return seal(secret, 'p', `${plaintextPrefix('p', expiresAt, { customerId: claims.customerId, deliveryKey: claims.deliveryKey, flowId: claims.flowId })}]`);
}

/**
 * Throws InvalidTrackingTokenError unless `token` is an unaltered preferences token signed with `secret`. Unlike an
 * unsubscribe link, an expired one is refused by the page (`expired`): leaving everything stays possible through the
 * unsubscribe link, which never expires.
 */
export function verifyPreferencesToken(secret: string, token: string, now: number): VerifiedToken<PreferencesClaims> {
  const opened = open(secret, 'p', token);
  // No preferences token was ever written in the earlier format: a token of that shape is another kind, or forged.
  if (opened.legacy) throw new InvalidTrackingTokenError('this is not a preferences token: use the "Manage preferences" link of one of our emails');
  const common = commonClaims(opened.fields, 'p', now);
  return { claims: { customerId: common.c, deliveryKey: common.d, flowId: common.f }, expiresAt: common.expiresAt, expired: common.expired };
}

// The earlier format: base64url(JSON payload) "." base64url(first 16 bytes of HMAC-SHA256(secret, kind + payload)).
// Only read, never written.

/** The earlier format's payload: short keys. */
interface Payload {
  k: Kind;
  c: string;
  d: string;
  f: string;
  s?: string;
  v?: string;
  u?: string;
}

const LEGACY_MAC_BYTES = 16;
const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** 16 bytes in base64url: 21 whole characters and one that holds the last byte's 2 remaining bits. */
const LEGACY_MAC_CHARS = Math.ceil((LEGACY_MAC_BYTES * 4) / 3);
const secretKeys = new Map<string, KeyObject>();

function secretKey(secret: string): KeyObject {
  let key = secretKeys.get(secret);
  if (!key) {
    if (secretKeys.size >= 16) secretKeys.clear();
    secretKeys.set(secret, (key = createSecretKey(Buffer.from(secret, 'utf8'))));
  }
  return key;
}

function legacyMac(secret: string, kind: Kind, payloadSegment: string): string {
  const full = createHmac('sha256', secretKey(secret)).update(kind + payloadSegment, 'latin1').digest('base64url');
  const last = BASE64URL_ALPHABET.indexOf(full[LEGACY_MAC_CHARS - 1]!) & 0b110000;
  return full.slice(0, LEGACY_MAC_CHARS - 1) + BASE64URL_ALPHABET[last]!;
}

function macMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

function verifyLegacy(secret: string, kind: Kind, token: string): Payload {
  const parts = token.split('.');
  if (parts.length !== 2 || !BASE64URL.test(parts[0] ?? '') || !BASE64URL.test(parts[1] ?? '')) {
    throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: expected the token of an email link, in base64url; was it cut short?`);
  }
  const [segment, givenMac] = parts as [string, string];
  // Compare the encoded MAC text, not decoded bytes: decoding ignores a last character's spare bits.
  if (!macMatches(givenMac, legacyMac(secret, kind, segment))) {
    const other = KINDS.find((k) => k !== kind && macMatches(givenMac, legacyMac(secret, k, segment)));
    if (other !== undefined) throw new InvalidTrackingTokenError(`this is ${A_KIND[other]} token, not ${A_KIND[kind]} token`);
    throw new InvalidTrackingTokenError(`the ${KIND_NAME[kind]} token's signature does not match: it was altered or signed with another secret`);
  }
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: the payload is not JSON`);
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: the payload is not an object`);
  }
  const p = payload as Record<string, unknown>;
  if (p.k !== kind) throw new InvalidTrackingTokenError(`expected ${A_KIND[kind]} token, the payload says kind ${JSON.stringify(p.k)}`);
  for (const key of kind === 'u' ? (['c', 'd', 'f'] as const) : (['c', 'd', 'f', 's'] as const)) {
    if (typeof p[key] !== 'string' || p[key] === '') throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: payload field "${key}" is missing`);
  }
  if (p.v !== undefined && typeof p.v !== 'string') throw new InvalidTrackingTokenError(`malformed ${KIND_NAME[kind]} token: payload field "v" is not a string`);
  if (kind === 'c' && (typeof p.u !== 'string' || !isHttpUrl(p.u))) throw new InvalidTrackingTokenError('the click token does not carry an http(s) url');
  return p as unknown as Payload;
}

function legacyOpenClaims(p: Payload): OpenClaims {
  const claims: OpenClaims = { customerId: p.c, deliveryKey: p.d, flowId: p.f, stepId: p.s as string };
  if (p.v !== undefined) claims.variant = p.v;
  return claims;
}

function trimSlash(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '');
}

/** The tracked link that replaces `claims.url` in an email: `${baseUrl}/t/c/<token>`. */
export function trackedClickUrl(baseUrl: string, secret: string, claims: ClickClaims, expiresAt: number): string {
  return `${trimSlash(baseUrl)}/t/c/${signClickToken(secret, claims, expiresAt)}`;
}

/**
 * One email's tracked links: the claims are checked and encoded once, then each link costs its URL check and one
 * encryption. `literal` says the URL is the template's own text (see ClickClaims.literal).
 */
export function clickUrlSigner(baseUrl: string, secret: string, claims: Omit<ClickClaims, 'url' | 'literal'>, expiresAt: number): (url: string, literal?: boolean) => string {
  requireSecret(secret);
  const prefix = `${plaintextPrefix('c', expiresAt, claims)},`;
  const suffix = `${variantSuffix(claims.variant)}]`;
  const base = `${trimSlash(baseUrl)}/t/c/`;
  return (url, literal = false) => `${base}${seal(secret, 'c', `${prefix}${literal ? 1 : 0},${JSON.stringify(requireTrackableUrl(url))}${suffix}`)}`;
}

/** The open pixel's address: `${baseUrl}/t/o/<token>.gif` (the server strips `.gif` before verifying). */
export function openPixelUrl(baseUrl: string, secret: string, claims: OpenClaims, expiresAt: number): string {
  return `${trimSlash(baseUrl)}/t/o/${signOpenToken(secret, claims, expiresAt)}.gif`;
}

/** The unsubscribe link of an email: `${baseUrl}/u/<token>`; GET shows a confirm page, POST (RFC 8058 one-click) opts out. */
export function unsubscribeUrl(baseUrl: string, secret: string, claims: UnsubscribeClaims, expiresAt: number): string {
  return `${trimSlash(baseUrl)}/u/${signUnsubscribeToken(secret, claims, expiresAt)}`;
}

/** The preference center link of an email: `${baseUrl}/preferences/<token>`; GET shows the topics, POST saves them. */
export function preferencesUrl(baseUrl: string, secret: string, claims: PreferencesClaims, expiresAt: number): string {
  return `${trimSlash(baseUrl)}/preferences/${signPreferencesToken(secret, claims, expiresAt)}`;
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
