// The codec endpoint on the admin surface (the Temporal remote codec protocol): POST /codec/decode and /codec/encode
// take and answer {"payloads":[{"metadata":{k: base64},"data": base64}]}, so the Temporal Web UI and CLI show
// plaintext to an operator with an admin key (read scope decodes; encoding needs write). The Web UI calls it from the
// browser: CORS for its origin, with credentials, and a session cookie set by the form at /codec/login (HttpOnly,
// SameSite=Strict, holding a MAC'd digest of the key, never the key). `Authorization: Bearer <admin key>` works too.
// A payload whose data key is gone (an erased customer) or that does not decrypt is answered unchanged.
import { createHmac, timingSafeEqual } from 'node:crypto';
import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import type { Payload } from '@temporalio/common';
import type { EncryptingPayloadCodec } from '../client/payload-codec';
import { keyDigest, scopeAllows, type AdminScope } from '../core/api-keys';
import type { Config } from '../core/config';
import { BadInputError, ForbiddenError } from '../core/errors';
import { DataKeyMissingError, PayloadDecryptionError } from '../core/payload-crypto';
import { AdminUnauthorizedError, type KeyRing, type KnownKey } from './auth';
import { asyncHandler } from './http-errors';
import { escapeHtml, htmlPage } from './html-page';

export const CODEC_SESSION_COOKIE = 'microflows_codec';
/** How long a codec login lasts. */
export const CODEC_SESSION_MS = 12 * 3_600_000;
/** A page of history's payloads; the UI sends one event's at a time. */
const BODY_LIMIT = '8mb';

export interface CodecRouteDeps {
  codec: EncryptingPayloadCodec;
  keys: KeyRing;
  /** Browser origins answered with CORS (credentials allowed): the Temporal Web UI's. */
  allowedOrigins: readonly string[];
  /** Signs the session cookie (the server's signing secret: sessions survive restarts when it is configured). */
  signingSecret: string;
  now?: () => number;
  log?: (message: string) => void;
}

/** The origins of the codec's CORS: MICROFLOWS_CODEC_ALLOWED_ORIGINS, or the embedded Web UI's on loopback. */
export function codecOriginsOf(config: Pick<Config, 'codecAllowedOrigins' | 'temporalUiPort'>): string[] {
  return config.codecAllowedOrigins ?? [`http://127.0.0.1:${config.temporalUiPort}`, `http://localhost:${config.temporalUiPort}`];
}

function sessionMac(secret: string, digest: string, expires: number): string {
  return createHmac('sha256', secret).update(`codec session\0${digest}\0${expires}`).digest('base64url');
}

/** The cookie value of a session for the key with this digest, until `expires` (epoch ms). */
export function codecSessionValue(secret: string, digest: string, expires: number): string {
  return `v1.${digest}.${expires}.${sessionMac(secret, digest, expires)}`;
}

function sessionDigest(secret: string, value: string, now: number): string | null {
  const parts = value.split('.');
  if (parts.length !== 4 || parts[0] !== 'v1') return null;
  const [, digest, expiresText, mac] = parts as [string, string, string, string];
  const expires = Number(expiresText);
  if (!/^[0-9a-f]{64}$/.test(digest) || !Number.isSafeInteger(expires) || expires <= now) return null;
  const expected = Buffer.from(sessionMac(secret, digest, expires));
  const given = Buffer.from(mac);
  return given.length === expected.length && timingSafeEqual(given, expected) ? digest : null;
}

function cookieOf(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

function page(title: string, body: string): string {
  return htmlPage(title, body, 'body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222;line-height:1.5}label{display:block;font-weight:600;margin:.5rem 0}input{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}button{font-size:1rem;padding:.6rem 1.2rem;margin-top:1rem;cursor:pointer}code{background:#f3f3f3;padding:0 .2rem}');
}

function sendHtml(res: Response, status: number, html: string): void {
  res.status(status).set({ 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).send(html);
}

function loginForm(message: string): string {
  return page(
    'Decode Temporal payloads',
    `${message}<p>Sign in with an admin key (read scope is enough) to let the Temporal Web UI in this browser show the plaintext of encrypted payloads for ${CODEC_SESSION_MS / 3_600_000} hours.</p>
<form method="post" action="/codec/login">
<label for="key">Admin key</label>
<input id="key" name="key" type="password" autocomplete="off" required>
<button type="submit">Sign in</button>
</form>`,
  );
}

function signedInPage(endpoint: string): string {
  return page(
    'Signed in',
    `<p>The Temporal Web UI in this browser can now decode payloads. In the UI, open the Codec Server settings (the icon at the top right, "Codec Server could not connect" until this is done), choose "Use my browser setting and ignore Cluster-level setting", and set:</p>
<ul><li>Codec server endpoint: <code>${escapeHtml(endpoint)}</code></li><li>Include cross-origin credentials: on</li></ul>
<p>Apply, then reload the page. Open the UI under the same host name as this page (127.0.0.1 or localhost, not one for each): the session cookie is sent only there.</p>
<form method="post" action="/codec/logout"><button type="submit">Sign out</button></form>`,
  );
}

/** One payload of the protocol's JSON: metadata values and data are base64. */
function payloadFromJson(value: unknown, index: number): Payload {
  const field = `payloads[${index}]`;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new BadInputError('each payload is an object { "metadata": { … }, "data": "<base64>" }', field);
  const { metadata = {}, data = '' } = value as { metadata?: unknown; data?: unknown };
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw new BadInputError('metadata is an object of base64 strings', `${field}.metadata`);
  if (typeof data !== 'string') throw new BadInputError('data is a base64 string', `${field}.data`);
  const decoded: Record<string, Uint8Array> = {};
  for (const [key, text] of Object.entries(metadata as Record<string, unknown>)) {
    if (typeof text !== 'string') throw new BadInputError('metadata values are base64 strings', `${field}.metadata.${key}`);
    decoded[key] = Buffer.from(text, 'base64');
  }
  return { metadata: decoded, data: Buffer.from(data, 'base64') };
}

function payloadToJson(payload: Payload): { metadata: Record<string, string>; data: string } {
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(payload.metadata ?? {})) if (value) metadata[key] = Buffer.from(value).toString('base64');
  return { metadata, data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64') };
}

function payloadsOf(body: unknown): Payload[] {
  const list = (body as { payloads?: unknown } | null)?.payloads;
  if (!Array.isArray(list)) throw new BadInputError('send {"payloads": [{"metadata": {…}, "data": "<base64>"}]} as application/json', 'payloads');
  return list.map(payloadFromJson);
}

export function codecRoutes(deps: CodecRouteDeps): Router {
  const { codec, keys, signingSecret } = deps;
  const now = deps.now ?? Date.now;
  const origins = new Set(deps.allowedOrigins);
  const router = Router();

  // CORS for the Web UI's origin only, credentials included; other origins get no CORS headers (the browser then
  // keeps the answer from their page).
  router.use('/codec', (req, res, next) => {
    const origin = req.headers.origin;
    res.set('Cache-Control', 'no-store');
    if (origin && origins.has(origin)) {
      res.set({ 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true', Vary: 'Origin' });
      if (req.method === 'OPTIONS') {
        res
          .set({ 'Access-Control-Allow-Methods': 'POST', 'Access-Control-Allow-Headers': 'Content-Type, X-Namespace, Authorization', 'Access-Control-Max-Age': '600' })
          .status(204)
          .end();
        return;
      }
    }
    next();
  });

  /** The admin key of the request (Bearer first, then the session cookie), with the scope asked. */
  async function authorize(req: Request, needed: AdminScope): Promise<void> {
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    let known: KnownKey | undefined;
    if (bearer !== undefined) known = await keys.lookup(bearer);
    else {
      const session = cookieOf(req, CODEC_SESSION_COOKIE);
      const digest = session === undefined ? null : sessionDigest(signingSecret, session, now());
      if (digest) known = await keys.lookupDigest(digest);
    }
    if (!known || known.kind !== 'admin') {
      // A Bearer challenge: a Basic one would make a browser open its credentials dialog over the Web UI (and a
      // headless one wait for it), instead of the UI reading the 401.
      throw new AdminUnauthorizedError('the codec needs an admin key: send `Authorization: Bearer <admin key>`, or sign in at /codec/login in the browser that runs the Temporal Web UI');
    }
    if (!scopeAllows(known.scopes, needed)) throw new ForbiddenError(`${req.path} needs an admin key with the "${needed}" scope; this key has ${known.scopes.join(', ')}`);
  }
  const requireKey =
    (needed: AdminScope): RequestHandler =>
    (req, _res, next) => {
      authorize(req, needed).then(() => next(), next);
    };

  const json = express.json({ limit: BODY_LIMIT, type: () => true });

  router.post(
    '/codec/decode',
    requireKey('read'),
    json,
    asyncHandler(async (req, res) => {
      const payloads = payloadsOf(req.body);
      const decoded = await Promise.all(
        payloads.map(async (payload) => {
          try {
            return await codec.decodeOne(payload);
          } catch (err) {
            // Shredded (erased customer) or altered: nothing readable, and not the UI's error to show.
            if (err instanceof DataKeyMissingError || err instanceof PayloadDecryptionError) return payload;
            throw err;
          }
        }),
      );
      res.json({ payloads: decoded.map(payloadToJson) });
    }),
  );

  router.post(
    '/codec/encode',
    requireKey('write'),
    json,
    asyncHandler(async (req, res) => {
      // No workflow context comes with the request: what the UI encodes (a signal's input) goes under the system key.
      res.json({ payloads: (await codec.encode(payloadsOf(req.body))).map(payloadToJson) });
    }),
  );

  router.get('/codec/login', (_req, res) => sendHtml(res, 200, loginForm('')));

  router.post(
    '/codec/login',
    express.urlencoded({ extended: false, limit: '4kb' }),
    asyncHandler(async (req, res) => {
      const key = typeof req.body?.key === 'string' ? req.body.key.trim() : '';
      const known = key === '' ? undefined : await keys.lookup(key);
      if (!known || known.kind !== 'admin' || !scopeAllows(known.scopes, 'read')) {
        sendHtml(res, 401, loginForm('<p role="alert"><strong>That is not an admin key with the read scope.</strong></p>'));
        return;
      }
      const expires = now() + CODEC_SESSION_MS;
      res.cookie(CODEC_SESSION_COOKIE, codecSessionValue(signingSecret, keyDigest(key), expires), {
        httpOnly: true,
        sameSite: 'strict',
        secure: req.secure,
        path: '/codec',
        maxAge: CODEC_SESSION_MS,
      });
      sendHtml(res, 200, signedInPage(`${req.protocol}://${req.headers.host ?? 'localhost'}/codec`));
    }),
  );

  router.post('/codec/logout', (_req, res) => {
    res.clearCookie(CODEC_SESSION_COOKIE, { path: '/codec', httpOnly: true, sameSite: 'strict' });
    sendHtml(res, 200, loginForm('<p>Signed out.</p>'));
  });

  return router;
}
