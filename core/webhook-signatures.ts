// Proves that an ESP webhook came from the provider: SendGrid's signed event webhook (ECDSA P-256 over the timestamp
// and the raw body, with the account's public verification key) and Postmark's HTTP Basic credential. Computation
// only: the server hands in the headers, the body bytes and the time.
import { createHash, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { ConfigError, UnauthorizedError } from './errors';

export const SENDGRID_KEY_VARIABLE = 'SENDGRID_WEBHOOK_VERIFICATION_KEY';
export const POSTMARK_CREDENTIAL_VARIABLE = 'POSTMARK_WEBHOOK_CREDENTIAL';

/** Lower-cased, as node:http presents request headers. */
export const SENDGRID_SIGNATURE_HEADER = 'x-twilio-email-event-webhook-signature';
export const SENDGRID_TIMESTAMP_HEADER = 'x-twilio-email-event-webhook-timestamp';

/**
 * A signed request is accepted this long after it was signed: SendGrid posts within seconds, so an older one is a
 * replay of a captured request. Retries are signed afresh, so they are not refused.
 */
export const SENDGRID_MAX_AGE_MS = 10 * 60_000;
/** Clocks disagree a little; a request signed further in the future than this is not a clock difference. */
export const SENDGRID_MAX_AHEAD_MS = 5 * 60_000;

const SIGNATURE_NAME = 'X-Twilio-Email-Event-Webhook-Signature';
const TIMESTAMP_NAME = 'X-Twilio-Email-Event-Webhook-Timestamp';

/**
 * The verification key as SendGrid shows it (base64 of the DER SubjectPublicKeyInfo, line breaks allowed) or as a
 * PEM block. Throws ConfigError naming the variable when it is neither, or not a P-256 key: a server with a
 * mistyped key would otherwise refuse every real webhook.
 */
export function sendGridVerificationKey(text: string): KeyObject {
  const fix = `set ${SENDGRID_KEY_VARIABLE} to the Verification Key SendGrid shows under Settings > Mail Settings > Event Webhook > Signature Verification`;
  let key: KeyObject;
  try {
    // createPublicKey would derive the public half of a private key; a private key in the environment is a mistake.
    if (text.includes('PRIVATE KEY')) throw new Error('a private key');
    if (text.includes('-----BEGIN')) {
      key = createPublicKey({ key: text, format: 'pem' });
    } else {
      const base64 = text.replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) throw new Error('not base64');
      key = createPublicKey({ key: Buffer.from(base64, 'base64'), format: 'der', type: 'spki' });
    }
  } catch {
    throw new ConfigError(`${SENDGRID_KEY_VARIABLE} is not a public key (base64 DER or PEM): ${fix}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new ConfigError(`${SENDGRID_KEY_VARIABLE} is a ${key.asymmetricKeyType ?? 'non-EC'} key, not the ECDSA P-256 key SendGrid signs with: ${fix}`);
  }
  return key;
}

export interface SignedRequest {
  /** The X-Twilio-Email-Event-Webhook-Signature header: base64 of a DER ECDSA signature. */
  signature: string | undefined;
  /** The X-Twilio-Email-Event-Webhook-Timestamp header: unix seconds. */
  timestamp: string | undefined;
  /** The body exactly as received: re-serialized JSON would not verify. */
  body: Buffer;
}

/**
 * What the headers alone can refuse, before the body is read: a missing signature or timestamp, or a timestamp
 * outside the accepted window around `now` (epoch ms). Throws UnauthorizedError saying which header and why;
 * returns the two headers, present.
 */
export function checkSendGridHeaders(request: Omit<SignedRequest, 'body'>, now: number): { signature: string; timestamp: string } {
  const { signature, timestamp } = request;
  if (!signature || !timestamp) {
    const missing = [!signature && SIGNATURE_NAME, !timestamp && TIMESTAMP_NAME].filter(Boolean).join(' and ');
    throw new UnauthorizedError(`missing ${missing}: turn on Signed Event Webhook in SendGrid (Settings > Mail Settings > Event Webhook); unsigned webhooks are refused`);
  }
  if (!/^\d{1,12}$/.test(timestamp)) throw new UnauthorizedError(`${TIMESTAMP_NAME}: expected unix seconds, got ${JSON.stringify(timestamp.slice(0, 40))}`);
  const signedAt = Number(timestamp) * 1000;
  if (now - signedAt > SENDGRID_MAX_AGE_MS) {
    throw new UnauthorizedError(`${TIMESTAMP_NAME}: signed ${Math.round((now - signedAt) / 1000)} s ago; requests older than ${SENDGRID_MAX_AGE_MS / 60_000} minutes are refused as replays (if SendGrid sent it just now, check this server's clock)`);
  }
  if (signedAt - now > SENDGRID_MAX_AHEAD_MS) {
    throw new UnauthorizedError(`${TIMESTAMP_NAME}: ${Math.round((signedAt - now) / 1000)} s in the future; more than ${SENDGRID_MAX_AHEAD_MS / 60_000} minutes ahead is refused (check this server's clock)`);
  }
  return { signature, timestamp };
}

/**
 * Throws UnauthorizedError, saying which header is at fault and why, unless `request` was signed by `key` within
 * the accepted window around `now` (epoch ms). The time is checked first: a stale request costs no verification.
 */
export function verifySendGridSignature(key: KeyObject, request: SignedRequest, now: number): void {
  const { signature, timestamp } = checkSendGridHeaders(request, now);
  if (!ecdsaVerifies(key, Buffer.concat([Buffer.from(timestamp, 'utf8'), request.body]), signature)) {
    throw new UnauthorizedError(
      `${SIGNATURE_NAME}: the signature does not match the timestamp and body for the key in ${SENDGRID_KEY_VARIABLE}: is it this SendGrid account's key, and does any proxy on the way change the body?`,
    );
  }
}

function ecdsaVerifies(key: KeyObject, data: Buffer, signature: string): boolean {
  try {
    return verify('sha256', data, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
  } catch {
    // A signature that is not DER at all: as unverified as a wrong one.
    return false;
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * A check of Postmark's webhook credential (`user:password`, which Postmark sends as HTTP Basic auth): the returned
 * function throws UnauthorizedError when the Authorization header is missing or carries another credential.
 * Digests are compared in constant time, which hides the credential's length too. Throws ConfigError when
 * `credential` is not `user:password`.
 */
export function basicCredentialChecker(credential: string): (authorization: string | undefined) => void {
  const colon = credential.indexOf(':');
  if (colon < 1 || colon === credential.length - 1) {
    throw new ConfigError(`${POSTMARK_CREDENTIAL_VARIABLE} must be user:password (both non-empty), the same pair as in the Postmark webhook's Basic auth settings`);
  }
  const expected = digest(credential);
  return (authorization) => {
    const match = authorization === undefined ? null : /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(authorization);
    if (!match?.[1]) {
      throw new UnauthorizedError(`missing credential: in Postmark's webhook settings, set HTTP Basic auth to the user:password in ${POSTMARK_CREDENTIAL_VARIABLE}`);
    }
    const given = Buffer.from(match[1], 'base64').toString('utf8');
    if (!timingSafeEqual(digest(given), expected)) throw new UnauthorizedError(`wrong credential: Postmark's webhook Basic auth must be the user:password in ${POSTMARK_CREDENTIAL_VARIABLE}`);
  };
}
