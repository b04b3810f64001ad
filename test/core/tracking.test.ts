// Signed click/open/unsubscribe tokens: what verifies, what is rejected and why; the RFC 8058 headers; and the UTM
// tags a click redirect adds.
import { createHmac } from 'node:crypto';
import { BadInputError, isMicroflowsError } from '../../core/errors';
import {
  ClickClaims,
  clickUrlSigner,
  InvalidTrackingTokenError,
  listUnsubscribeHeaders,
  OpenClaims,
  openPixelUrl,
  signClickToken,
  signOpenToken,
  signUnsubscribeToken,
  trackedClickUrl,
  UnsubscribeClaims,
  unsubscribeUrl,
  verifyClickToken,
  verifyOpenToken,
  verifyUnsubscribeToken,
  withUtm,
} from '../../core/tracking';

const SECRET = 'test-tracking-secret-0123456789';
const click: ClickClaims = {
  customerId: 'cust_42',
  deliveryKey: 'cart-abandonment:run-1:reminder',
  flowId: 'cart-abandonment',
  stepId: 'reminder',
  variant: 'b',
  url: 'https://shop.example.com/cart?item=sku-1&ref=mail#top',
};
const open: OpenClaims = { customerId: 'cust_42', deliveryKey: 'cart-abandonment:run-1:reminder', flowId: 'cart-abandonment', stepId: 'reminder' };
const unsubscribe: UnsubscribeClaims = { customerId: 'cust_42', deliveryKey: 'cart-abandonment:run-1:reminder', flowId: 'cart-abandonment' };

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

describe('click and open tokens', () => {
  test('a click token round-trips its claims', () => {
    const token = signClickToken(SECRET, click);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    expect(verifyClickToken(SECRET, token)).toEqual(click);
  });

  test('an open token round-trips its claims, without a variant when none was given', () => {
    const token = signOpenToken(SECRET, open);
    const claims = verifyOpenToken(SECRET, token);
    expect(claims).toEqual(open);
    expect('variant' in claims).toBe(false);
    expect(verifyOpenToken(SECRET, signOpenToken(SECRET, { ...open, variant: 'a' }))).toEqual({ ...open, variant: 'a' });
  });

  test('signing is deterministic: the same claims give the same token', () => {
    expect(signClickToken(SECRET, click)).toBe(signClickToken(SECRET, { ...click }));
  });

  test('non-ASCII claims survive the round trip', () => {
    const claims = { ...click, customerId: 'ñandú-ü', url: 'https://shop.example.com/sök?q=blå' };
    expect(verifyClickToken(SECRET, signClickToken(SECRET, claims))).toEqual(claims);
  });

  test.each([
    ['click', signClickToken(SECRET, click), (t: string) => verifyClickToken(SECRET, t)],
    ['open', signOpenToken(SECRET, open), (t: string) => verifyOpenToken(SECRET, t)],
    ['unsubscribe', signUnsubscribeToken(SECRET, unsubscribe), (t: string) => verifyUnsubscribeToken(SECRET, t)],
  ])('every single-character alteration of a %s token (payload or MAC) is rejected', (_kind, token, verify) => {
    const alterations = singleCharacterAlterations(token);
    expect(alterations.length).toBeGreaterThan(token.length * 60);
    const accepted = alterations.filter(({ altered }) => {
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
    const token = signClickToken('another-secret', click);
    expect(() => verifyClickToken(SECRET, token)).toThrow(InvalidTrackingTokenError);
    expect(() => verifyClickToken(SECRET, token)).toThrow('signature does not match');
  });

  test('a forged payload with a recomputed-looking MAC is rejected', () => {
    const [, mac] = signClickToken(SECRET, click).split('.');
    const forged = Buffer.from(JSON.stringify({ k: 'c', c: 'cust_42', d: 'x', f: 'f', s: 's', u: 'https://evil.example' })).toString('base64url');
    expect(() => verifyClickToken(SECRET, `${forged}.${mac}`)).toThrow('signature does not match');
  });

  test('a click token is not accepted as an open token, nor the reverse', () => {
    expect(() => verifyOpenToken(SECRET, signClickToken(SECRET, click))).toThrow('this is a click token, not an open token');
    expect(() => verifyClickToken(SECRET, signOpenToken(SECRET, open))).toThrow('this is an open token, not a click token');
  });

  test.each([
    ['', 'an empty string'],
    ['abc', 'malformed'],
    ['abc.def.ghi', 'malformed'],
    ['.abc', 'malformed'],
    ['abc.', 'malformed'],
    ['ab+c.def', 'malformed'],
    ['abc.de/f', 'malformed'],
  ])('malformed token %j is rejected (%s)', (token, message) => {
    expect(() => verifyClickToken(SECRET, token)).toThrow(InvalidTrackingTokenError);
    expect(() => verifyClickToken(SECRET, token)).toThrow(message);
  });

  test('the error is a 400 bad input with its own code, and never echoes the secret', () => {
    let caught: unknown;
    try {
      verifyClickToken(SECRET, signClickToken('zq-wrong-secret-7', click));
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
      expect(() => signClickToken(SECRET, { ...click, url })).toThrow(BadInputError);
      expect(() => signClickToken(SECRET, { ...click, url })).toThrow('url: only http(s) links can be tracked');
    },
  );

  test('a correctly signed token whose url is not http(s) is rejected at verification', () => {
    // Only reachable if a signer skipped the check; verification must not redirect to it anyway.
    const segment = Buffer.from(JSON.stringify({ k: 'c', c: 'a', d: 'b', f: 'c', s: 'd', u: 'javascript:alert(1)' })).toString('base64url');
    const mac = createHmac('sha256', SECRET).update(`c${segment}`).digest().subarray(0, 16).toString('base64url');
    expect(() => verifyClickToken(SECRET, `${segment}.${mac}`)).toThrow('does not carry an http(s) url');
  });

  test('signing with an empty secret or empty claims is refused', () => {
    expect(() => signOpenToken('', open)).toThrow('tracking secret is empty');
    expect(() => signOpenToken(SECRET, { ...open, customerId: '' })).toThrow('customerId: expected a non-empty string');
  });
});

/** A token with this payload and a valid MAC for `kind`: what a signer with a bug (or the secret) could produce. */
function signedPayload(kind: string, payload: unknown): string {
  const segment = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `${segment}.${createHmac('sha256', SECRET).update(`${kind}${segment}`).digest().subarray(0, 16).toString('base64url')}`;
}

describe('unsubscribe tokens', () => {
  test('round-trip their three claims, in the same opaque base64url form as the others', () => {
    const token = signUnsubscribeToken(SECRET, unsubscribe);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    expect(token).not.toContain('cust_42');
    expect(verifyUnsubscribeToken(SECRET, token)).toEqual(unsubscribe);
    expect(signUnsubscribeToken(SECRET, { ...unsubscribe })).toBe(token);
  });

  test('only the three claims are signed: extra fields a caller passes are not carried', () => {
    const token = signUnsubscribeToken(SECRET, { ...click });
    expect(token).toBe(signUnsubscribeToken(SECRET, unsubscribe));
    expect(verifyUnsubscribeToken(SECRET, token)).toEqual(unsubscribe);
  });

  test('a click or open token is not an unsubscribe token, nor the reverse', () => {
    expect(() => verifyUnsubscribeToken(SECRET, signClickToken(SECRET, click))).toThrow('this is a click token, not an unsubscribe token');
    expect(() => verifyUnsubscribeToken(SECRET, signOpenToken(SECRET, open))).toThrow('this is an open token, not an unsubscribe token');
    const token = signUnsubscribeToken(SECRET, unsubscribe);
    expect(() => verifyClickToken(SECRET, token)).toThrow('this is an unsubscribe token, not a click token');
    expect(() => verifyOpenToken(SECRET, token)).toThrow('this is an unsubscribe token, not an open token');
  });

  test('a token signed with another secret, or a forged payload under a real MAC, is rejected', () => {
    expect(() => verifyUnsubscribeToken(SECRET, signUnsubscribeToken('another-secret', unsubscribe))).toThrow(
      "the unsubscribe token's signature does not match: it was altered or signed with another secret",
    );
    const [, mac] = signUnsubscribeToken(SECRET, unsubscribe).split('.');
    const forged = Buffer.from(JSON.stringify({ k: 'u', c: 'someone-else', d: 'x', f: 'f' })).toString('base64url');
    expect(() => verifyUnsubscribeToken(SECRET, `${forged}.${mac}`)).toThrow('signature does not match');
  });

  test('a validly signed payload of another kind or shape is still refused', () => {
    expect(() => verifyUnsubscribeToken(SECRET, signedPayload('u', { k: 'c', c: 'a', d: 'b', f: 'c' }))).toThrow(
      'expected an unsubscribe token, the payload says kind "c"',
    );
    expect(() => verifyUnsubscribeToken(SECRET, signedPayload('u', { k: 'u', c: 'a', f: 'c' }))).toThrow('payload field "d" is missing');
    expect(() => verifyUnsubscribeToken(SECRET, signedPayload('u', ['u']))).toThrow('the payload is not an object');
  });

  test.each([
    ['', 'expected an unsubscribe token, got an empty string'],
    ['abc', 'malformed unsubscribe token'],
    ['a.b.c', 'malformed unsubscribe token'],
  ])('malformed token %j is rejected (%s)', (token, message) => {
    expect(() => verifyUnsubscribeToken(SECRET, token)).toThrow(message);
  });

  test('signing needs a secret and every claim', () => {
    expect(() => signUnsubscribeToken('', unsubscribe)).toThrow('tracking secret is empty');
    expect(() => signUnsubscribeToken(SECRET, { ...unsubscribe, deliveryKey: '' })).toThrow('deliveryKey: expected a non-empty string');
  });
});

describe('tracked URLs', () => {
  test('click and pixel URLs carry verifiable tokens; a trailing slash on the base is ignored', () => {
    const clickUrl = trackedClickUrl('https://mf.example.com/', SECRET, click);
    const match = /^https:\/\/mf\.example\.com\/t\/c\/([^/]+)$/.exec(clickUrl);
    expect(match).not.toBeNull();
    expect(verifyClickToken(SECRET, match?.[1] ?? '')).toEqual(click);

    const pixel = openPixelUrl('https://mf.example.com', SECRET, open);
    const pixelMatch = /^https:\/\/mf\.example\.com\/t\/o\/([^/]+)\.gif$/.exec(pixel);
    expect(pixelMatch).not.toBeNull();
    expect(verifyOpenToken(SECRET, pixelMatch?.[1] ?? '')).toEqual(open);
  });
});

describe('one-click unsubscribe URL and headers', () => {
  test('the URL is <base>/u/<token>, a trailing slash on the base ignored', () => {
    const url = unsubscribeUrl('https://mf.example.com/', SECRET, unsubscribe);
    const match = /^https:\/\/mf\.example\.com\/u\/([^/]+)$/.exec(url);
    expect(match).not.toBeNull();
    expect(verifyUnsubscribeToken(SECRET, match?.[1] ?? '')).toEqual(unsubscribe);
  });

  test('the headers are the RFC 8058 pair', () => {
    const url = unsubscribeUrl('https://mf.example.com', SECRET, unsubscribe);
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
  test('signs each link exactly as trackedClickUrl does', () => {
    const { url: _url, ...claims } = click;
    const sign = clickUrlSigner('https://t.example/', SECRET, claims);
    for (const url of ['https://shop.example.com/a?b=1&c="x"', 'http://x.example/é#frag']) {
      expect(sign(url)).toBe(trackedClickUrl('https://t.example/', SECRET, { ...claims, url }));
      expect(verifyClickToken(SECRET, sign(url).split('/t/c/')[1]!)).toEqual({ ...claims, url });
    }
    const { variant: _variant, ...withoutVariant } = claims;
    expect(clickUrlSigner('https://t.example', SECRET, withoutVariant)('https://a.example/')).toBe(trackedClickUrl('https://t.example', SECRET, { ...withoutVariant, url: 'https://a.example/' }));
  });

  test('refuses what trackedClickUrl refuses', () => {
    const { url: _url, ...claims } = click;
    const sign = clickUrlSigner('https://t.example', SECRET, claims);
    expect(() => sign('javascript:alert(1)')).toThrow(/only http\(s\) links/);
    expect(() => sign('')).toThrow(BadInputError);
    expect(() => clickUrlSigner('https://t.example', SECRET, { ...claims, customerId: '' })).toThrow(/customerId/);
  });
});
