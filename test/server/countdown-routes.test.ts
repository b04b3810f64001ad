// The countdown image endpoint on a real socket: GET /c/countdown/<token>.gif answers an animated GIF (decoded with
// omggif) whose first frame shows the time left at the request, read back from its pixels with the font table; a
// forged, altered or malformed token gets a 404 and no image; a past deadline gets one static "offer ended" frame; a
// repeated open in the same minute is served from the frame cache; the brand's colours are used; and the URL a
// rendered email carries is one this endpoint draws.
import { SAMPLE_BRAND } from '../../core/brand';
import { DEFAULT_COUNTDOWN_STYLE, countdownImageUrl, countdownPalette, signCountdownToken, timeLeft, type Rgb, type TimeLeft } from '../../core/countdown';
import { CountdownGifs } from '../../core/countdown-gif';
import { compileTemplate, renderTemplate, templateHandlebars } from '../../core/template-compiler';
import { noDispatch } from '../../server/dispatcher';
import { CAPITALS, DIGITS, decodeGif, readLines } from '../support/countdown-reader';
import { TEST_ADMIN_KEY } from '../support/http';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const SECRET = 'countdown-routes-test-secret';
const SECOND = 1000;
const MINUTE = 60_000;
const DAY = 86_400_000;
const [, , TEXT, MUTED] = countdownPalette(DEFAULT_COUNTDOWN_STYLE) as [Rgb, Rgb, Rgb, Rgb];

function shown(left: TimeLeft): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(left.days)} ${two(left.hours)} ${two(left.minutes)} ${two(left.seconds)}`;
}

for (const backend of storeBackends('countdown routes')) {
  backend.describe(`countdown image endpoint: ${backend.name}`, () => {
    let app: RunningApp;
    let gifs: CountdownGifs;
    /** The server's clock: real time unless a test pins it. */
    let pinned: number | null = null;

    beforeAll(async () => {
      const store = await backend.open();
      gifs = new CountdownGifs();
      app = await serveApp({
        store,
        config: { writeKey: 'test-write-key', adminKey: TEST_ADMIN_KEY, signingSecret: SECRET },
        dispatcher: noDispatch,
        now: () => pinned ?? Date.now(),
        countdown: { gifs },
        log: () => undefined,
      });
    });

    afterAll(async () => {
      await app?.close();
      await backend.dispose();
    });

    afterEach(() => {
      pinned = null;
    });

    const fetchGif = async (url: string) => {
      const response = await fetch(url);
      return { response, bytes: new Uint8Array(await response.arrayBuffer()) };
    };

    test('a valid token answers an animated GIF whose first frame shows the time left at the request', async () => {
      const until = Date.now() + 2 * DAY + 3 * 3_600_000 + 4 * MINUTE + 5_500;
      const before = Date.now();
      const { response, bytes } = await fetchGif(`${app.url}/c/countdown/${signCountdownToken(SECRET, until)}.gif`);
      const after = Date.now();
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('image/gif');
      expect(response.headers.get('cache-control')).toBe('no-store, max-age=0');
      // Mail clients show it from their own origin.
      expect(response.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
      const gif = decodeGif(bytes);
      expect(gif.frames).toHaveLength(60);
      expect(gif.frames.every((frame) => frame.delayCs === 100)).toBe(true);
      expect(gif.loopCount).toBe(0);
      // The request was answered at some second between sending it and reading the answer.
      const seconds: number[] = [];
      for (let at = Math.floor(before / SECOND) * SECOND; at <= after; at += SECOND) seconds.push(at);
      const [first] = readLines(gif.frames[0]!.image, TEXT, DIGITS);
      const answeredAt = seconds.find((at) => shown(timeLeft(at, until)) === first);
      expect({ first, possible: seconds.map((at) => shown(timeLeft(at, until))) }).toEqual({ first: expect.any(String), possible: expect.arrayContaining([first]) });
      expect(readLines(gif.frames[0]!.image, MUTED, CAPITALS).at(-1)).toBe('DAYS HOURS MINS SECS');
      // Each frame a second later shows a second less.
      expect(gif.frames.map((frame) => readLines(frame.image, TEXT, DIGITS)[0])).toEqual(gif.frames.map((_f, k) => shown(timeLeft(answeredAt! + k * SECOND, until))));
    });

    test('a forged, altered or malformed token gets a 404 and no image', async () => {
      const until = Date.now() + DAY;
      const good = signCountdownToken(SECRET, until);
      const [payload, signature] = good.split('.') as [string, string];
      const later = Buffer.from(JSON.stringify({ u: until + 30 * DAY, v: 1 })).toString('base64url');
      const flipped = signature.slice(0, -1) + (signature.endsWith('A') ? 'B' : 'A');
      for (const path of [
        `/c/countdown/${signCountdownToken('not-our-secret', until)}.gif`,
        `/c/countdown/${later}.${signature}.gif`,
        `/c/countdown/${payload}.${flipped}.gif`,
        `/c/countdown/${good}`,
        `/c/countdown/${good}.png`,
        '/c/countdown/garbage.gif',
        '/c/countdown/.gif',
      ]) {
        const response = await fetch(`${app.url}${path}`);
        const body = await response.text();
        expect({ path, status: response.status, type: response.headers.get('content-type') }).toEqual({ path, status: 404, type: 'text/plain; charset=utf-8' });
        expect(body).toBe('Not found: this countdown image link is not valid.\n');
      }
    });

    test('past the deadline: a single static frame that reads OFFER ENDED over 00:00:00:00', async () => {
      const { response, bytes } = await fetchGif(`${app.url}/c/countdown/${signCountdownToken(SECRET, Date.now() - MINUTE)}.gif`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('image/gif');
      const gif = decodeGif(bytes);
      expect(gif.frames).toHaveLength(1);
      expect(gif.loopCount).toBeNull();
      expect(readLines(gif.frames[0]!.image, TEXT, CAPITALS)).toEqual(['OFFER ENDED']);
      expect(readLines(gif.frames[0]!.image, MUTED, `${DIGITS}:`)).toEqual(['00:00:00:00']);
    });

    test('the same minute opened again is served from the frame cache', async () => {
      const minuteStart = Math.floor(Date.now() / MINUTE) * MINUTE + 7 * MINUTE;
      const until = minuteStart + 5 * DAY;
      const url = `${app.url}/c/countdown/${signCountdownToken(SECRET, until)}.gif`;
      pinned = minuteStart + 10_200;
      const first = await fetchGif(url);
      const cold = { ...gifs.stats };
      pinned = minuteStart + 10_700;
      const again = await fetchGif(url);
      // Same second: the same bytes, nothing drawn or encoded.
      expect(Buffer.from(again.bytes).equals(Buffer.from(first.bytes))).toBe(true);
      expect(gifs.stats).toEqual({ ...cold, warmOpens: cold.warmOpens + 1 });
      pinned = minuteStart + 42_000;
      const later = await fetchGif(url);
      // Another second of the minute: only its whole first frame is new.
      expect(gifs.stats).toEqual({ ...cold, warmOpens: cold.warmOpens + 2, framesDrawn: cold.framesDrawn + 1, framesEncoded: cold.framesEncoded + 1 });
      expect(readLines(decodeGif(later.bytes).frames[0]!.image, TEXT, DIGITS)).toEqual([shown(timeLeft(minuteStart + 42_000, until))]);
    });

    test('the URL a rendered email carries is one this endpoint draws', async () => {
      const text = `---\nsubject: "Sale"\ncategory: transactional\n---\n<mjml><mj-body><mj-section><mj-column><mj-text>{{countdown until=data.offer_ends}}</mj-text></mj-column></mj-section></mj-body></mjml>`;
      const result = compileTemplate('sale', { file: 'templates/sale.mjml', text }, { partials: new Map(), layouts: new Map() }, templateHandlebars());
      const until = Date.now() + 3 * DAY;
      const rendered = renderTemplate(
        result.template!,
        { profile: {}, consent: {}, data: { offer_ends: new Date(until).toISOString() } },
        {
          locale: 'en-US',
          timezone: 'UTC',
          currency: 'USD',
          shopUrl: 'https://shop.example',
          linkDomains: [],
          link: (url) => url,
          unsubscribeUrl: null,
          openPixelUrl: null,
          recommend: null,
          productUrl: () => undefined,
          now: Date.now(),
          countdownUrl: (untilMs) => countdownImageUrl(app.url, SECRET, untilMs),
        },
      );
      const src = /<img src="([^"]+)"/.exec(rendered.html)?.[1];
      expect(src).toMatch(/\/c\/countdown\/.+\.gif$/);
      const requestedAt = Date.now();
      const { response, bytes } = await fetchGif(src!);
      expect(response.status).toBe(200);
      const [first] = readLines(decodeGif(bytes).frames[0]!.image, TEXT, DIGITS);
      expect([shown(timeLeft(Math.floor(requestedAt / SECOND) * SECOND, until)), shown(timeLeft(Math.floor(requestedAt / SECOND) * SECOND + SECOND, until))]).toContain(first);
    });
  });
}

describe('countdown image endpoint: the brand\'s colours', () => {
  const backend = storeBackends('countdown routes style').find((b) => b.name === 'sqlite')!;
  afterAll(() => backend.dispose());

  test('the frames are drawn in the style given; a colour that is not hex stops the app at start, named', async () => {
    const store = await backend.open();
    const style = { background: '#0B1F3A', text: '#FFD166', muted: '#9FB3C8' };
    const app = await serveApp({ store, config: { writeKey: 'test-write-key', signingSecret: SECRET }, dispatcher: noDispatch, countdown: { style }, log: () => undefined });
    try {
      const until = Date.now() + DAY;
      const response = await fetch(`${app.url}/c/countdown/${signCountdownToken(SECRET, until)}.gif`);
      const frame = decodeGif(new Uint8Array(await response.arrayBuffer())).frames[0]!.image;
      // The default text colour draws nothing here; the brand's draws the digits.
      expect(readLines(frame, TEXT, DIGITS)).toEqual([]);
      expect(readLines(frame, [0xff, 0xd1, 0x66], DIGITS)).toHaveLength(1);
      expect([...frame.pixels.slice(0, 3)]).toEqual([0x0b, 0x1f, 0x3a]);
    } finally {
      await app.close();
    }
    await expect(serveApp({ store, config: { writeKey: 'test-write-key' }, dispatcher: noDispatch, countdown: { style: { ...style, text: 'gold' } } })).rejects.toThrow('countdown style text: a countdown colour is a hex colour such as "#1F2328", got "gold"');
  });

  test('with a brand file and no explicit style, the digits are the brand primary colour on its card colour', async () => {
    const store = await backend.open();
    const brand = { ...SAMPLE_BRAND, colors: { ...SAMPLE_BRAND.colors, primary: '#7a1f3d', surface: '#fffdf8' } };
    const app = await serveApp({ store, config: { writeKey: 'test-write-key', signingSecret: SECRET }, dispatcher: noDispatch, brand, log: () => undefined });
    try {
      const response = await fetch(`${app.url}/c/countdown/${signCountdownToken(SECRET, Date.now() + DAY)}.gif`);
      const frame = decodeGif(new Uint8Array(await response.arrayBuffer())).frames[0]!.image;
      expect(readLines(frame, [0x7a, 0x1f, 0x3d], DIGITS)).toHaveLength(1);
      expect([...frame.pixels.slice(0, 3)]).toEqual([0xff, 0xfd, 0xf8]);
    } finally {
      await app.close();
    }
  });
});
