// Webhook authentication: SendGrid's ECDSA signature over timestamp + raw body (a real P-256 key pair, made here,
// signing as SendGrid does) and Postmark's Basic credential.
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { ConfigError, UnauthorizedError } from '../../core/errors';
import {
  SENDGRID_MAX_AGE_MS,
  SENDGRID_MAX_AHEAD_MS,
  basicCredentialChecker,
  checkSendGridHeaders,
  sendGridVerificationKey,
  verifySendGridSignature,
} from '../../core/webhook-signatures';

const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
/** The verification key as SendGrid's settings page shows it: base64 of the DER SubjectPublicKeyInfo. */
const shownKey = publicKey.export({ format: 'der', type: 'spki' }).toString('base64');

const NOW = Date.UTC(2024, 4, 6, 10, 15, 32);
const body = Buffer.from('[{"email":"ada@example.com","timestamp":1714990532,"event":"delivered","sg_event_id":"ZGVs"}]\r\n', 'utf8');

/** What SendGrid does: ECDSA P-256 / SHA-256 over the timestamp's text followed by the body's bytes, DER, base64. */
function signed(payload: Buffer, at = NOW, key: KeyObject = privateKey) {
  const timestamp = String(Math.floor(at / 1000));
  const signature = sign('sha256', Buffer.concat([Buffer.from(timestamp), payload]), { key, dsaEncoding: 'der' }).toString('base64');
  return { signature, timestamp, body: payload };
}

function refusal(run: () => void): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(UnauthorizedError);
    return (err as Error).message;
  }
  throw new Error('expected a refusal (UnauthorizedError), but it was accepted');
}

describe('sendGridVerificationKey', () => {
  test('reads the key as SendGrid shows it, with line breaks, and as PEM', () => {
    const wrapped = shownKey.replace(/(.{40})/g, '$1\n');
    const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    for (const text of [shownKey, wrapped, pem]) expect(sendGridVerificationKey(text).equals(publicKey)).toBe(true);
  });

  test.each([
    ['not base64 at all', 'not a key!'],
    ['base64 of something else', Buffer.from('hello').toString('base64')],
    ['the private key', privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()],
  ])('%s is a ConfigError naming the variable', (_what, text) => {
    expect(() => sendGridVerificationKey(text)).toThrow(ConfigError);
    expect(() => sendGridVerificationKey(text)).toThrow(/SENDGRID_WEBHOOK_VERIFICATION_KEY/);
  });

  test('a key of another curve or type is refused: SendGrid signs with P-256', () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    expect(() => sendGridVerificationKey(p384)).toThrow(/SENDGRID_WEBHOOK_VERIFICATION_KEY is a ec key, not the ECDSA P-256 key/);
    expect(() => sendGridVerificationKey(rsa)).toThrow(/SENDGRID_WEBHOOK_VERIFICATION_KEY is a rsa key/);
  });
});

describe('verifySendGridSignature', () => {
  const key = sendGridVerificationKey(shownKey);

  test('a request signed by the key, just now, verifies', () => {
    expect(() => verifySendGridSignature(key, signed(body), NOW)).not.toThrow();
  });

  test('every single byte changed in the body fails, as does the timestamp changed by a second', () => {
    const request = signed(body);
    for (let i = 0; i < body.length; i++) {
      const altered = Buffer.from(body);
      altered[i] = altered[i]! ^ 0x01;
      expect(refusal(() => verifySendGridSignature(key, { ...request, body: altered }, NOW))).toMatch(/^X-Twilio-Email-Event-Webhook-Signature: the signature does not match/);
    }
    const nextSecond = String(Number(request.timestamp) + 1);
    expect(refusal(() => verifySendGridSignature(key, { ...request, timestamp: nextSecond }, NOW))).toMatch(/signature does not match/);
  });

  test('the body is verified as bytes: the same JSON re-serialized does not verify', () => {
    const request = signed(body);
    const reserialized = Buffer.from(JSON.stringify(JSON.parse(body.toString('utf8'))));
    expect(refusal(() => verifySendGridSignature(key, { ...request, body: reserialized }, NOW))).toMatch(/does any proxy on the way change the body/);
  });

  test('a signature by another key, or one that is not a signature, fails', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    expect(refusal(() => verifySendGridSignature(key, signed(body, NOW, other), NOW))).toMatch(/signature does not match/);
    expect(refusal(() => verifySendGridSignature(key, { ...signed(body), signature: 'AAAA' }, NOW))).toMatch(/signature does not match/);
    expect(refusal(() => verifySendGridSignature(key, { ...signed(body), signature: '%%%' }, NOW))).toMatch(/signature does not match/);
  });

  test('the age limit holds on both sides: 10 minutes old passes, a second more is a replay', () => {
    expect(() => verifySendGridSignature(key, signed(body, NOW - SENDGRID_MAX_AGE_MS), NOW)).not.toThrow();
    expect(refusal(() => verifySendGridSignature(key, signed(body, NOW - SENDGRID_MAX_AGE_MS - 1000), NOW))).toBe(
      "X-Twilio-Email-Event-Webhook-Timestamp: signed 601 s ago; requests older than 10 minutes are refused as replays (if SendGrid sent it just now, check this server's clock)",
    );
  });

  test('the clock-skew limit holds on both sides: 5 minutes ahead passes, a second more is refused', () => {
    expect(() => verifySendGridSignature(key, signed(body, NOW + SENDGRID_MAX_AHEAD_MS), NOW)).not.toThrow();
    expect(refusal(() => verifySendGridSignature(key, signed(body, NOW + SENDGRID_MAX_AHEAD_MS + 1000), NOW))).toMatch(/301 s in the future; more than 5 minutes ahead/);
  });

  test.each([
    ['no signature', { signature: undefined }, 'missing X-Twilio-Email-Event-Webhook-Signature: turn on Signed Event Webhook'],
    ['no timestamp', { timestamp: undefined }, 'missing X-Twilio-Email-Event-Webhook-Timestamp: turn on'],
    ['neither', { signature: undefined, timestamp: undefined }, 'missing X-Twilio-Email-Event-Webhook-Signature and X-Twilio-Email-Event-Webhook-Timestamp'],
    ['an empty signature', { signature: '' }, 'missing X-Twilio-Email-Event-Webhook-Signature'],
    ['a fractional timestamp', { timestamp: '1714990532.5' }, 'X-Twilio-Email-Event-Webhook-Timestamp: expected unix seconds, got "1714990532.5"'],
    ['a negative timestamp', { timestamp: '-1714990532' }, 'expected unix seconds'],
  ])('%s is refused, saying which header and why', (_what, headers, message) => {
    const request = { ...signed(body), ...headers };
    expect(refusal(() => verifySendGridSignature(key, request, NOW))).toContain(message);
    expect(refusal(() => checkSendGridHeaders(request, NOW))).toContain(message);
  });

  test('checkSendGridHeaders passes a fresh pair without looking at any body', () => {
    expect(checkSendGridHeaders({ signature: 'anything', timestamp: String(NOW / 1000) }, NOW)).toEqual({ signature: 'anything', timestamp: String(NOW / 1000) });
  });
});

describe('basicCredentialChecker (Postmark)', () => {
  const basic = (text: string) => `Basic ${Buffer.from(text).toString('base64')}`;
  const check = basicCredentialChecker('postmark:s3cret:with-colon');

  test('the configured user:password passes, in any case of the scheme', () => {
    expect(() => check(basic('postmark:s3cret:with-colon'))).not.toThrow();
    expect(() => check(`basic ${Buffer.from('postmark:s3cret:with-colon').toString('base64')}`)).not.toThrow();
  });

  test.each([
    ['no header', undefined, /^missing credential: in Postmark's webhook settings, set HTTP Basic auth to the user:password in POSTMARK_WEBHOOK_CREDENTIAL$/],
    ['a Bearer token', 'Bearer postmark:s3cret:with-colon', /^missing credential/],
    ['the password alone', basic('s3cret:with-colon'), /^wrong credential: .*POSTMARK_WEBHOOK_CREDENTIAL/],
    ['a prefix of it', basic('postmark:s3cret'), /^wrong credential/],
    ['it plus one character', basic('postmark:s3cret:with-colon!'), /^wrong credential/],
    ['another user', basic('postmarK:s3cret:with-colon'), /^wrong credential/],
  ])('%s is refused', (_what, header, message) => {
    expect(refusal(() => check(header))).toMatch(message);
  });

  test.each(['no-colon', ':password-only', 'user-only:', ''])('a configured credential %j that is not user:password is a ConfigError', (credential) => {
    expect(() => basicCredentialChecker(credential)).toThrow(ConfigError);
    expect(() => basicCredentialChecker(credential)).toThrow(/POSTMARK_WEBHOOK_CREDENTIAL must be user:password/);
  });
});
