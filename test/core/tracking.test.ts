// Click/open/unsubscribe tokens: what verifies, what is rejected and why, expiry, that a token shows nothing of its
// claims, that tokens of the earlier format still verify (as expired); the RFC 8058 headers; and the UTM tags a click
// redirect adds.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { BadInputError, isMicroflowsError } from '../../core/errors';
import {
  ClickClaims,
  clickUrlSigner,
  DEFAULT_TOKEN_TTL_MS,
  InvalidTrackingTokenError,
  listUnsubscribeHeaders,
  OpenClaims,
  openPixelUrl,
  signClickToken,
  signOpenToken,
  signUnsubscribeToken,
  tokenExpiry,
  trackedClickUrl,
  UnsubscribeClaims,
  unsubscribeUrl,
  verifyClickToken,
  verifyOpenToken,
  verifyUnsubscribeToken,
  withUtm,
} from '../../core/tracking';
import { fuzzRun } from '../support/fuzz-seed';

const fuzz = fuzzRun('test/core/tracking.test.ts');
const SECRET = 'test-tracking-secret-0123456789';
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const DAY = 86_400_000;
/** A whole second, as tokens keep it. */
const EXPIRES = NOW + 30 * DAY;
const click: ClickClaims = {
  customerId: 'cust_42',
  deliveryKey: 'flow/cart-abandonment/cust_42/1/reminder',
  flowId: 'cart-abandonment',
  stepId: 'reminder',
  variant: 'b',
  url: 'https://shop.example.com/cart?item=sku-1&ref=mail#top',
  literal: true,
};
const open: OpenClaims = { customerId: 'cust_42', deliveryKey: 'flow/cart-abandonment/cust_42/1/reminder', flowId: 'cart-abandonment', stepId: 'reminder' };
const unsubscribe: UnsubscribeClaims = { customerId: 'cust_42', deliveryKey: 'flow/cart-abandonment/cust_42/1/reminder', flowId: 'cart-abandonment' };
const valid = <T>(claims: T, expiresAt = EXPIRES) => ({ claims, expiresAt, expired: false });

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Every token that differs from `token` in exactly one character (to another base64url character or a '.'). */
function singleCharacterAlterations(token: string): Array<{ position: number; altered: string }> {
  const out: Array<{ position: number; altered: string }> = [];
  for (let i = 0; i < token.length; i++) {
    for (const ch of `${ALPHABET}.`) {
      if (ch === token[i]) continue;
      out.push({ position: i, altered: token.slice(0, i) + ch + token.slice(i + 1) });
    }
  }
  return out;
}

/**
 * The format from its definition, sharing no code with core/tracking: AES-256-GCM under HKDF-SHA256(secret, no
 * salt, "microflows tracking token v2 aes-256-gcm"), the kind as associated data, base64url(iv ‖ ciphertext ‖ tag).
 */
function referenceKey(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret), Buffer.alloc(0), 'microflows tracking token v2 aes-256-gcm', 32));
}

function referenceSeal(kind: string, plaintext: string, secret = SECRET): string {
  const iv = Buffer.alloc(12, 7);
  const cipher = createCipheriv('aes-256-gcm', referenceKey(secret), iv);
  cipher.setAAD(Buffer.from(kind));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

function referenceOpen(kind: string, token: string, secret = SECRET): unknown {
  const bytes = Buffer.from(token, 'base64url');
  const decipher = createDecipheriv('aes-256-gcm', referenceKey(secret), bytes.subarray(0, 12));
  decipher.setAAD(Buffer.from(kind));
  decipher.setAuthTag(bytes.subarray(bytes.length - 16));
  return JSON.parse(Buffer.concat([decipher.update(bytes.subarray(12, bytes.length - 16)), decipher.final()]).toString('utf8'));
}

/** A token of the earlier format (readable JSON payload, 16 bytes of HMAC-SHA256 over kind + payload). */
function legacyToken(kind: string, payload: unknown, secret = SECRET): string {
  const segment = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `${segment}.${createHmac('sha256', secret).update(`${kind}${segment}`).digest().subarray(0, 16).toString('base64url')}`;
}

describe('click and open tokens', () => {
  test('a click token round-trips its claims and expiry, in base64url with no separator', () => {
    const token = signClickToken(SECRET, click, EXPIRES);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(verifyClickToken(SECRET, token, NOW)).toEqual(valid(click));
    // Where the URL came from is carried: a link from data is checked again at the redirect.
    const fromData = { ...click, literal: false };
    expect(verifyClickToken(SECRET, signClickToken(SECRET, fromData, EXPIRES), NOW)).toEqual(valid(fromData));
    const { literal: _literal, ...unsaid } = click;
    expect(verifyClickToken(SECRET, signClickToken(SECRET, unsaid, EXPIRES), NOW).claims.literal).toBe(false);
  });

  test('an open token round-trips its claims, without a variant when none was given', () => {
    const token = signOpenToken(SECRET, open, EXPIRES);
    const verified = verifyOpenToken(SECRET, token, NOW);
    expect(verified).toEqual(valid(open));
    expect('variant' in verified.claims).toBe(false);
    expect(verifyOpenToken(SECRET, signOpenToken(SECRET, { ...open, variant: 'a' }, EXPIRES), NOW)).toEqual(valid({ ...open, variant: 'a' }));
  });

  test('the same claims give a different token each time (a fresh nonce), each of which verifies', () => {
    const tokens = new Set(Array.from({ length: 50 }, () => signClickToken(SECRET, click, EXPIRES)));
    expect(tokens.size).toBe(50);
    for (const token of tokens) expect(verifyClickToken(SECRET, token, NOW).claims).toEqual(click);
  });

  test('a token shows none of its claims: no customer id, delivery key, flow, step or URL in its bytes', () => {
    const claims = { ...click, customerId: 'ada.lovelace-7731', url: 'https://shop.example.com/p/secret-product' };
    const token = signClickToken(SECRET, claims, EXPIRES);
    const bytes = Buffer.from(token, 'base64url').toString('latin1');
    for (const text of [claims.customerId, claims.deliveryKey, claims.flowId, claims.stepId, 'secret-product', 'shop.example']) {
      expect(token).not.toContain(text);
      expect(bytes).not.toContain(text);
    }
  });

  test('a token the format definition seals verifies, and a token sealed here opens by the definition', () => {
    const exp = Math.floor(EXPIRES / 1000);
    const sealed = referenceSeal('c', JSON.stringify([exp, 'cust_42', 1, 'cart-abandonment', 'reminder', 1, 'https://shop.example.com/', 'b']));
    expect(verifyClickToken(SECRET, sealed, NOW)).toEqual(valid({ customerId: 'cust_42', deliveryKey: 'flow/cart-abandonment/cust_42/1/reminder', flowId: 'cart-abandonment', stepId: 'reminder', url: 'https://shop.example.com/', literal: true, variant: 'b' }));
    expect(referenceOpen('u', signUnsubscribeToken(SECRET, { ...unsubscribe, deliveryKey: 'manual-send-9' }, EXPIRES))).toEqual([exp, 'cust_42', 'manual-send-9', 'cart-abandonment']);
  });

  test('non-ASCII claims survive the round trip', () => {
    const claims = { ...click, customerId: 'ñandú-ü', url: 'https://shop.example.com/sök?q=blå' };
    expect(verifyClickToken(SECRET, signClickToken(SECRET, claims, EXPIRES), NOW).claims).toEqual(claims);
  });

  test('generated claims round-trip, whatever their text (delivery keys of every shape)', () => {
    const text = fc.string({ minLength: 1, maxLength: 30, unit: 'grapheme' });
    const claimsArbitrary = fc
      .record({ customerId: text, flowId: text, stepId: text, run: fc.nat(), pass: fc.nat({ max: 3 }), shape: fc.constantFrom('run', 'pass', 'other', 'foreign'), variant: fc.option(text, { nil: undefined }), foreign: text })
      .map(({ customerId, flowId, stepId, run, pass, shape, variant, foreign }) => {
        const prefix = `flow/${flowId}/${customerId}/`;
        const deliveryKey = shape === 'run' ? `${prefix}${run}/${stepId}` : shape === 'pass' ? `${prefix}${run}/${stepId}#${pass}` : shape === 'other' ? `${prefix}${foreign}` : foreign;
        return { customerId, flowId, stepId, deliveryKey, ...(variant === undefined ? {} : { variant }) };
      });
    fuzz.check(
      fc.property(claimsArbitrary, fc.boolean(), (claims, literal) => {
        const clickClaims = { ...claims, url: 'https://shop.example/x', literal };
        expect(verifyClickToken(SECRET, signClickToken(SECRET, clickClaims, EXPIRES), NOW)).toEqual(valid(clickClaims));
        expect(verifyOpenToken(SECRET, signOpenToken(SECRET, claims, EXPIRES), NOW)).toEqual(valid(claims));
        const unsubscribeClaims = { customerId: claims.customerId, deliveryKey: claims.deliveryKey, flowId: claims.flowId };
        expect(verifyUnsubscribeToken(SECRET, signUnsubscribeToken(SECRET, unsubscribeClaims, EXPIRES), NOW)).toEqual(valid(unsubscribeClaims));
      }),
      300,
    );
  });

  test.each([
    ['click', () => signClickToken(SECRET, click, EXPIRES), (t: string) => verifyClickToken(SECRET, t, NOW)],
    ['open', () => signOpenToken(SECRET, open, EXPIRES), (t: string) => verifyOpenToken(SECRET, t, NOW)],
    ['unsubscribe', () => signUnsubscribeToken(SECRET, unsubscribe, EXPIRES), (t: string) => verifyUnsubscribeToken(SECRET, t, NOW)],
  ])('every single-character alteration and every shortening of a %s token is rejected', (_kind, sign, verify) => {
    const token = sign();
    const alterations = [...singleCharacterAlterations(token).map(({ altered }) => altered), ...Array.from({ length: token.length - 1 }, (_, i) => token.slice(0, i + 1))];
    expect(alterations.length).toBeGreaterThan(token.length * 60);
    const accepted = alterations.filter((altered) => {
      try {
        verify(altered);
        return true;
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidTrackingTokenError);
        return false;
      }
    });
    expect(accepted).toEqual([]);
  });

  test('a token signed with another secret is rejected', () => {
    const token = signClickToken('another-secret', click, EXPIRES);
    expect(() => verifyClickToken(SECRET, token, NOW)).toThrow(InvalidTrackingTokenError);
    expect(() => verifyClickToken(SECRET, token, NOW)).toThrow("the click token's signature does not match: it was altered or signed with another secret");
  });

  test('a click token is not accepted as an open token, nor the reverse', () => {
    expect(() => verifyOpenToken(SECRET, signClickToken(SECRET, click, EXPIRES), NOW)).toThrow('this is a click token, not an open token');
    expect(() => verifyClickToken(SECRET, signOpenToken(SECRET, open, EXPIRES), NOW)).toThrow('this is an open token, not a click token');
  });

  test.each([
    ['', 'an empty string'],
    ['abc', 'malformed'],
    ['abc.def.ghi', 'malformed'],
    ['.abc', 'malformed'],
    ['abc.', 'malformed'],
    ['ab+c.def', 'malformed'],
    ['abc.de/f', 'malformed'],
    ['ab+cdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz', 'malformed'],
  ])('malformed token %j is rejected (%s)', (token, message) => {
    expect(() => verifyClickToken(SECRET, token, NOW)).toThrow(InvalidTrackingTokenError);
    expect(() => verifyClickToken(SECRET, token, NOW)).toThrow(message);
  });

  test('the error is a 400 bad input with its own code, and never echoes the secret', () => {
    let caught: unknown;
    try {
      verifyClickToken(SECRET, signClickToken('zq-wrong-secret-7', click, EXPIRES), NOW);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(BadInputError);
    expect(isMicroflowsError(caught)).toBe(true);
    const err = caught as InvalidTrackingTokenError;
    expect(err.status).toBe(400);
    expect(err.code).toBe('invalid_tracking_token');
    expect(err.name).toBe('InvalidTrackingTokenError');
    expect(err.message).not.toContain(SECRET);
    expect(err.message).not.toContain('zq-wrong-secret-7');
  });

  test.each(['mailto:ada@example.com', 'javascript:alert(1)', 'tel:+441234', '/relative/path', 'ftp://example.com/file'])(
    'a click token for the non-http(s) url %j cannot be signed',
    (url) => {
      expect(() => signClickToken(SECRET, { ...click, url }, EXPIRES)).toThrow(BadInputError);
      expect(() => signClickToken(SECRET, { ...click, url }, EXPIRES)).toThrow('url: only http(s) links can be tracked');
    },
  );

  test('a correctly sealed token whose url is not http(s), or of another shape, is rejected at verification', () => {
    // Only reachable if a signer skipped the check; verification must not redirect to it anyway.
    const exp = Math.floor(EXPIRES / 1000);
    expect(() => verifyClickToken(SECRET, referenceSeal('c', JSON.stringify([exp, 'a', 'b', 'c', 'd', 0, 'javascript:alert(1)'])), NOW)).toThrow('does not carry an http(s) url');
    expect(() => verifyClickToken(SECRET, referenceSeal('c', JSON.stringify([exp, 'a', 'b', 'c', 'd', 2, 'https://a.example/'])), NOW)).toThrow('does not say where its url came from');
    expect(() => verifyUnsubscribeToken(SECRET, referenceSeal('u', JSON.stringify({ c: 'a' })), NOW)).toThrow('malformed unsubscribe token: the payload is not a list of claims');
    expect(() => verifyUnsubscribeToken(SECRET, referenceSeal('u', JSON.stringify(['soon', 'a', 'b', 'c'])), NOW)).toThrow('its expiry is missing');
    expect(() => verifyUnsubscribeToken(SECRET, referenceSeal('u', JSON.stringify([exp, 'a', 7, 'c'])), NOW)).toThrow('its delivery key is missing');
    expect(() => verifyOpenToken(SECRET, referenceSeal('o', JSON.stringify([exp, 'a', 'b', 'c'])), NOW)).toThrow('its step is missing');
  });

  test('signing with an empty secret, empty claims or no expiry is refused', () => {
    expect(() => signOpenToken('', open, EXPIRES)).toThrow('tracking secret is empty');
    expect(() => signOpenToken(SECRET, { ...open, customerId: '' }, EXPIRES)).toThrow('customerId: expected a non-empty string');
    expect(() => signOpenToken(SECRET, open, Number.NaN)).toThrow('expiresAt: expected the expiry as epoch milliseconds');
  });
});

describe('expiry', () => {
  test('a token is valid until its expiry (kept in whole seconds, never longer than asked) and expired from then on', () => {
    const asked = EXPIRES + 999;
    for (const [sign, verify] of [
      [() => signClickToken(SECRET, click, asked), (t: string, now: number) => verifyClickToken(SECRET, t, now)],
      [() => signOpenToken(SECRET, open, asked), (t: string, now: number) => verifyOpenToken(SECRET, t, now)],
      [() => signUnsubscribeToken(SECRET, unsubscribe, asked), (t: string, now: number) => verifyUnsubscribeToken(SECRET, t, now)],
    ] as const) {
      const token = sign();
      expect(verify(token, EXPIRES - 1)).toMatchObject({ expiresAt: EXPIRES, expired: false });
      expect(verify(token, EXPIRES)).toMatchObject({ expiresAt: EXPIRES, expired: true });
      expect(verify(token, EXPIRES + 365 * DAY)).toMatchObject({ expired: true });
    }
  });

  test('an expired token still gives its claims (an expired unsubscribe link still unsubscribes)', () => {
    expect(verifyUnsubscribeToken(SECRET, signUnsubscribeToken(SECRET, unsubscribe, EXPIRES), EXPIRES + DAY)).toEqual({ claims: unsubscribe, expiresAt: EXPIRES, expired: true });
  });

  test('the default lifetime is 180 days', () => {
    expect(DEFAULT_TOKEN_TTL_MS).toBe(180 * DAY);
    expect(tokenExpiry(NOW)).toBe(NOW + 180 * DAY);
    expect(tokenExpiry(NOW, DAY)).toBe(NOW + DAY);
  });
});

describe('tokens of the earlier format (emails already sent)', () => {
  const legacyUnsubscribe = legacyToken('u', { k: 'u', c: 'cust_42', d: 'flow/cart-abandonment/cust_42/1/reminder', f: 'cart-abandonment' });

  test('an unsubscribe token still verifies, whatever the date, reported as expired (it carried no expiry)', () => {
    expect(verifyUnsubscribeToken(SECRET, legacyUnsubscribe, NOW + 5 * 365 * DAY)).toEqual({ claims: unsubscribe, expiresAt: null, expired: true });
  });

  test('click and open tokens verify as expired: the click lands on the shop, the open counts nothing', () => {
    const legacyClick = legacyToken('c', { k: 'c', c: 'cust_42', d: 'd-1', f: 'f', s: 's', u: 'https://shop.example.com/' });
    expect(verifyClickToken(SECRET, legacyClick, NOW)).toEqual({ claims: { customerId: 'cust_42', deliveryKey: 'd-1', flowId: 'f', stepId: 's', url: 'https://shop.example.com/', literal: false }, expiresAt: null, expired: true });
    expect(verifyOpenToken(SECRET, legacyToken('o', { k: 'o', c: 'cust_42', d: 'd-1', f: 'f', s: 's', v: 'a' }), NOW)).toEqual({
      claims: { customerId: 'cust_42', deliveryKey: 'd-1', flowId: 'f', stepId: 's', variant: 'a' },
      expiresAt: null,
      expired: true,
    });
  });

  test('an altered, forged or misused one is rejected as before', () => {
    const [payload, mac] = legacyUnsubscribe.split('.') as [string, string];
    const forged = Buffer.from(JSON.stringify({ k: 'u', c: 'someone-else', d: 'x', f: 'f' })).toString('base64url');
    expect(() => verifyUnsubscribeToken(SECRET, `${forged}.${mac}`, NOW)).toThrow("the unsubscribe token's signature does not match");
    expect(() => verifyUnsubscribeToken(SECRET, legacyToken('u', { k: 'u', c: 'a', d: 'b', f: 'c' }, 'another-secret'), NOW)).toThrow('signature does not match');
    expect(() => verifyClickToken(SECRET, legacyUnsubscribe, NOW)).toThrow('this is an unsubscribe token, not a click token');
    expect(() => verifyUnsubscribeToken(SECRET, legacyToken('u', { k: 'c', c: 'a', d: 'b', f: 'c' }), NOW)).toThrow('expected an unsubscribe token, the payload says kind "c"');
    expect(() => verifyUnsubscribeToken(SECRET, legacyToken('u', { k: 'u', c: 'a', f: 'c' }), NOW)).toThrow('payload field "d" is missing');
    expect(() => verifyClickToken(SECRET, legacyToken('c', { k: 'c', c: 'a', d: 'b', f: 'c', s: 'd', u: 'javascript:alert(1)' }), NOW)).toThrow('does not carry an http(s) url');
    const alterations = singleCharacterAlterations(legacyUnsubscribe).filter(({ altered }) => {
      try {
        verifyUnsubscribeToken(SECRET, altered, NOW);
        return true;
      } catch {
        return false;
      }
    });
    expect(alterations).toEqual([]);
    expect(payload.length).toBeGreaterThan(0);
  });
});

describe('unsubscribe tokens', () => {
  test('round-trip their three claims; extra fields a caller passes are not carried', () => {
    const token = signUnsubscribeToken(SECRET, { ...click }, EXPIRES);
    expect(verifyUnsubscribeToken(SECRET, token, NOW)).toEqual(valid(unsubscribe));
    expect(referenceOpen('u', token)).toHaveLength(4);
  });

  test('a click or open token is not an unsubscribe token, nor the reverse', () => {
    expect(() => verifyUnsubscribeToken(SECRET, signClickToken(SECRET, click, EXPIRES), NOW)).toThrow('this is a click token, not an unsubscribe token');
    expect(() => verifyUnsubscribeToken(SECRET, signOpenToken(SECRET, open, EXPIRES), NOW)).toThrow('this is an open token, not an unsubscribe token');
    const token = signUnsubscribeToken(SECRET, unsubscribe, EXPIRES);
    expect(() => verifyClickToken(SECRET, token, NOW)).toThrow('this is an unsubscribe token, not a click token');
    expect(() => verifyOpenToken(SECRET, token, NOW)).toThrow('this is an unsubscribe token, not an open token');
  });

  test('a token signed with another secret is rejected', () => {
    expect(() => verifyUnsubscribeToken(SECRET, signUnsubscribeToken('another-secret', unsubscribe, EXPIRES), NOW)).toThrow(
      "the unsubscribe token's signature does not match: it was altered or signed with another secret",
    );
  });

  test.each([
    ['', 'expected an unsubscribe token, got an empty string'],
    ['abc', 'malformed unsubscribe token'],
    ['a.b.c', 'malformed unsubscribe token'],
  ])('malformed token %j is rejected (%s)', (token, message) => {
    expect(() => verifyUnsubscribeToken(SECRET, token, NOW)).toThrow(message);
  });

  test('signing needs a secret and every claim', () => {
    expect(() => signUnsubscribeToken('', unsubscribe, EXPIRES)).toThrow('tracking secret is empty');
    expect(() => signUnsubscribeToken(SECRET, { ...unsubscribe, deliveryKey: '' }, EXPIRES)).toThrow('deliveryKey: expected a non-empty string');
  });
});

describe('tracked URLs', () => {
  test('click and pixel URLs carry verifiable tokens; a trailing slash on the base is ignored', () => {
    const clickUrl = trackedClickUrl('https://mf.example.com/', SECRET, click, EXPIRES);
    const match = /^https:\/\/mf\.example\.com\/t\/c\/([A-Za-z0-9_-]+)$/.exec(clickUrl);
    expect(match).not.toBeNull();
    expect(verifyClickToken(SECRET, match?.[1] ?? '', NOW)).toEqual(valid(click));

    const pixel = openPixelUrl('https://mf.example.com', SECRET, open, EXPIRES);
    const pixelMatch = /^https:\/\/mf\.example\.com\/t\/o\/([A-Za-z0-9_-]+)\.gif$/.exec(pixel);
    expect(pixelMatch).not.toBeNull();
    expect(verifyOpenToken(SECRET, pixelMatch?.[1] ?? '', NOW)).toEqual(valid(open));
  });

  test('a token is shorter than the earlier format’s for the same claims (no readable keys, the delivery key packed)', () => {
    const { literal: _literal, ...claims } = { ...click, url: 'https://shop.example.com/products/sku-1234' };
    const earlier = legacyToken('c', { k: 'c', c: claims.customerId, d: claims.deliveryKey, f: claims.flowId, s: claims.stepId, v: claims.variant, u: claims.url });
    expect(signClickToken(SECRET, claims, EXPIRES).length).toBeLessThan(earlier.length);
    expect(signUnsubscribeToken(SECRET, unsubscribe, EXPIRES).length).toBeLessThan(legacyToken('u', { k: 'u', c: 'cust_42', d: unsubscribe.deliveryKey, f: unsubscribe.flowId }).length);
  });
});

describe('one-click unsubscribe URL and headers', () => {
  test('the URL is <base>/u/<token>, a trailing slash on the base ignored', () => {
    const url = unsubscribeUrl('https://mf.example.com/', SECRET, unsubscribe, EXPIRES);
    const match = /^https:\/\/mf\.example\.com\/u\/([^/]+)$/.exec(url);
    expect(match).not.toBeNull();
    expect(verifyUnsubscribeToken(SECRET, match?.[1] ?? '', NOW)).toEqual(valid(unsubscribe));
  });

  test('the headers are the RFC 8058 pair', () => {
    const url = unsubscribeUrl('https://mf.example.com', SECRET, unsubscribe, EXPIRES);
    expect(listUnsubscribeHeaders(url)).toEqual({ 'List-Unsubscribe': `<${url}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' });
  });

  test.each(['mailto:unsubscribe@example.com', '/u/abc', 'https://mf.example.com/u/a>,<https://evil.example', 'https://mf.example.com/u/a\r\nBcc: x@example.com', 'https://mf.example.com/u/a b'])(
    '%j cannot be put in the headers',
    (url) => {
      expect(() => listUnsubscribeHeaders(url)).toThrow(BadInputError);
    },
  );
});

describe('withUtm', () => {
  const tags = { flowId: 'cart-abandonment', stepId: 'reminder' };

  test.each([
    ['no query', 'https://shop.example.com/cart', 'https://shop.example.com/cart?utm_source=microflows&utm_medium=email&utm_campaign=cart-abandonment&utm_content=reminder'],
    ['an existing query, kept in order', 'https://shop.example.com/p?b=2&a=1', 'https://shop.example.com/p?b=2&a=1&utm_source=microflows&utm_medium=email&utm_campaign=cart-abandonment&utm_content=reminder'],
    ['a fragment', 'https://shop.example.com/p?x=1#reviews', 'https://shop.example.com/p?x=1&utm_source=microflows&utm_medium=email&utm_campaign=cart-abandonment&utm_content=reminder#reviews'],
    ['a fragment and no query', 'http://shop.example.com/#/app/route?y=2', 'http://shop.example.com/?utm_source=microflows&utm_medium=email&utm_campaign=cart-abandonment&utm_content=reminder#/app/route?y=2'],
    ['an empty query', 'https://shop.example.com/p?', 'https://shop.example.com/p?utm_source=microflows&utm_medium=email&utm_campaign=cart-abandonment&utm_content=reminder'],
    ['a trailing &', 'https://shop.example.com/p?a=1&', 'https://shop.example.com/p?a=1&utm_source=microflows&utm_medium=email&utm_campaign=cart-abandonment&utm_content=reminder'],
    ['encoded values left as they were', 'https://shop.example.com/s?q=red%20shoes&r=a+b', 'https://shop.example.com/s?q=red%20shoes&r=a+b&utm_source=microflows&utm_medium=email&utm_campaign=cart-abandonment&utm_content=reminder'],
  ])('adds the tags to a link with %s', (_case, url, expected) => {
    expect(withUtm(url, tags)).toBe(expected);
  });

  test('parameters the marketer set are kept, only the missing ones are added', () => {
    expect(withUtm('https://shop.example.com/?utm_source=newsletter&utm_campaign=spring&x=1', tags)).toBe(
      'https://shop.example.com/?utm_source=newsletter&utm_campaign=spring&x=1&utm_medium=email&utm_content=reminder',
    );
    const complete = 'https://shop.example.com/?utm_source=a&utm_medium=b&utm_campaign=c&utm_content=d#x';
    expect(withUtm(complete, tags)).toBe(complete);
    expect(withUtm('https://shop.example.com/?utm_medium=', tags)).toBe(
      'https://shop.example.com/?utm_medium=&utm_source=microflows&utm_campaign=cart-abandonment&utm_content=reminder',
    );
  });

  test('the variant joins utm_content; the source can be chosen; values are encoded', () => {
    expect(withUtm('https://shop.example.com/', { flowId: 'winback & more', stepId: 'offer', variant: 'b', source: 'acme shop' })).toBe(
      'https://shop.example.com/?utm_source=acme%20shop&utm_medium=email&utm_campaign=winback%20%26%20more&utm_content=offer/b',
    );
  });

  test.each(['mailto:ada@example.com?subject=Hi', 'tel:+441234567', '#top', '/relative?x=1', 'ftp://example.com/f', 'javascript:void(0)', ''])(
    'the non-http(s) link %j is returned unchanged',
    (url) => {
      expect(withUtm(url, tags)).toBe(url);
    },
  );

  test('an upper-case scheme is still a web link', () => {
    expect(withUtm('HTTPS://shop.example.com/a', tags)).toBe(
      'HTTPS://shop.example.com/a?utm_source=microflows&utm_medium=email&utm_campaign=cart-abandonment&utm_content=reminder',
    );
  });
});

describe('clickUrlSigner', () => {
  test('signs each link with the claims trackedClickUrl signs, and whether it is literal', () => {
    const { url: _url, literal: _literal, ...claims } = click;
    const sign = clickUrlSigner('https://t.example/', SECRET, claims, EXPIRES);
    for (const url of ['https://shop.example.com/a?b=1&c="x"', 'http://x.example/é#frag']) {
      const signed = sign(url, true);
      expect(signed.startsWith('https://t.example/t/c/')).toBe(true);
      expect(verifyClickToken(SECRET, signed.split('/t/c/')[1]!, NOW)).toEqual(verifyClickToken(SECRET, trackedClickUrl('https://t.example/', SECRET, { ...claims, url, literal: true }, EXPIRES).split('/t/c/')[1]!, NOW));
      expect(verifyClickToken(SECRET, sign(url).split('/t/c/')[1]!, NOW)).toEqual(valid({ ...claims, url, literal: false }));
    }
    const { variant: _variant, ...withoutVariant } = claims;
    const bare = clickUrlSigner('https://t.example', SECRET, withoutVariant, EXPIRES)('https://a.example/');
    expect(verifyClickToken(SECRET, bare.split('/t/c/')[1]!, NOW)).toEqual(valid({ ...withoutVariant, url: 'https://a.example/', literal: false }));
  });

  test('refuses what trackedClickUrl refuses', () => {
    const { url: _url, ...claims } = click;
    const sign = clickUrlSigner('https://t.example', SECRET, claims, EXPIRES);
    expect(() => sign('javascript:alert(1)')).toThrow(/only http\(s\) links/);
    expect(() => sign('')).toThrow(BadInputError);
    expect(() => clickUrlSigner('https://t.example', SECRET, { ...claims, customerId: '' }, EXPIRES)).toThrow(/customerId/);
  });
});
