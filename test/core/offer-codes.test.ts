// Offer codes in core: reading a file of codes (plain lines or CSV, every bad line named file:line, nothing read from a
// file with one), the pool id and code rules on both sides of their limits, the low threshold against its definition,
// the warnings a process logs (once low, once empty, again after a refill), and the offer_code helper as templates use
// it: the pools a template names, the errors for a pool that is not a literal, and the code or the fallback rendered.
import fc from 'fast-check';
import { InvalidFileError } from '../../core/errors';
import { OfferPoolWatch, PREVIEW_OFFER_CODE, offerCodeProblem, offerPoolProblem, offerPoolStats, previewOfferCodes, readOfferCodeFile, resolveOfferPools } from '../../core/offer-codes';
import { compileTemplate, renderTemplate, templateHandlebars, type CompiledTemplate } from '../../core/template-compiler';
import type { RenderRuntime } from '../../core/template-helpers';
import { fuzzRun } from '../support/fuzz-seed';

const fuzz = fuzzRun('test/core/offer-codes.test.ts');

function problemsOf(file: string, text: string): Array<{ line: number | undefined; message: string }> {
  try {
    readOfferCodeFile(file, text);
  } catch (err) {
    if (!(err instanceof InvalidFileError)) throw err;
    return err.problems.map((p) => ({ line: p.line, message: p.message }));
  }
  throw new Error('expected the file to be refused');
}

describe('reading a file of codes', () => {
  test('one code per line: blank lines and surrounding spaces ignored, a code given twice read once', () => {
    expect(readOfferCodeFile('codes.txt', 'BACK-10-AAA\n  BACK-10-BBB  \n\n\t\nBACK-10-CCC\r\nBACK-10-AAA\n')).toEqual({ codes: ['BACK-10-AAA', 'BACK-10-BBB', 'BACK-10-CCC'], repeated: 1 });
  });

  test('a CSV whose first column is the code, with or without a "code" header', () => {
    const rows = 'W10-1,2026-01-01,batch a\nW10-2,2026-01-01,batch a\n"W10,3",x,y\n';
    expect(readOfferCodeFile('c.csv', rows).codes).toEqual(['W10-1', 'W10-2', 'W10,3']);
    expect(readOfferCodeFile('c.csv', `code,issued,note\n${rows}`).codes).toEqual(['W10-1', 'W10-2', 'W10,3']);
    expect(readOfferCodeFile('c.csv', `\ufeffCODE\nW10-1\n`).codes).toEqual(['W10-1']);
  });

  test('a bad line is named file:line with what is wrong, and the file gives nothing', () => {
    const text = ['code', 'GOOD-1', '', 'HAS SPACE', 'GOOD-2', `${'X'.repeat(65)}`, ',second column only', 'BELL\u0007'].join('\n');
    expect(problemsOf('pool.csv', text)).toEqual([
      { line: 4, message: expect.stringContaining('the code "HAS SPACE" holds a space') },
      { line: 6, message: expect.stringContaining('is 65 characters long: a code has at most 64') },
      { line: 7, message: 'the code (the first column) is empty' },
      { line: 8, message: expect.stringContaining('unprintable character U+0007') },
    ]);
    expect(() => readOfferCodeFile('pool.csv', text)).toThrow(/^pool\.csv:4: error: the code "HAS SPACE" holds a space/);
  });

  test('an unreadable CSV (an unclosed quote) is refused with its line', () => {
    expect(problemsOf('q.csv', 'A1\nA2\n"A3\nA4\n')).toEqual([{ line: expect.any(Number), message: expect.stringContaining('not a list of codes or a CSV') }]);
  });

  test('a file of many bad lines lists the first 20 and counts the rest', () => {
    const problems = problemsOf('big.txt', Array.from({ length: 30 }, (_, i) => `bad code ${i}`).join('\n'));
    expect(problems).toHaveLength(21);
    expect(problems[19]!.line).toBe(20);
    expect(problems[20]!.message).toBe('and 10 more bad lines');
  });

  test('any list of valid codes, written as lines or as a CSV, reads back as written (each once, in order)', () => {
    const printable = fc.constantFrom(...'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-_.!#$%&*+/=?@^~é€,"'.split(''));
    const code = fc.array(printable, { minLength: 1, maxLength: 64 }).map((chars) => chars.join(''));
    fuzz.check(
      fc.property(fc.array(code, { minLength: 0, maxLength: 40 }), fc.constantFrom('lines', 'csv', 'csv-header'), fc.boolean(), (codes, format, padded) => {
        const quote = (c: string) => (/[",]/.test(c) || format !== 'lines' ? `"${c.replace(/"/g, '""')}"` : c);
        const pad = (line: string, i: number) => (padded ? `${' '.repeat(i % 3)}${line}${i % 2 ? '  ' : ''}${i % 4 === 0 ? '\n' : ''}` : line);
        const lines = codes.map((c, i) => pad(format === 'lines' ? quote(c) : `${quote(c)},extra ${i}`, i));
        const text = `${format === 'csv-header' ? 'code,note\n' : ''}${lines.join('\n')}\n`;
        const distinct = [...new Set(codes)];
        expect(readOfferCodeFile('f.csv', text)).toEqual({ codes: distinct, repeated: codes.length - distinct.length });
      }),
      200,
    );
  });
});

describe('pool ids and codes, on both sides of each limit', () => {
  test.each([
    ['winback-10', true],
    ['a', true],
    ['0', true],
    [`a${'b'.repeat(63)}`, true],
    [`a${'b'.repeat(64)}`, false],
    ['', false],
    ['-winback', false],
    ['Winback', false],
    ['win_back', false],
    ['win back', false],
  ])('pool %j is a pool id: %s', (pool, ok) => {
    expect(offerPoolProblem(pool) === null).toBe(ok);
  });

  test.each([
    ['A', true],
    ['X'.repeat(64), true],
    ['€'.repeat(64), true],
    ['X'.repeat(65), false],
    ['', false],
    ['A B', false],
    ['A\u00a0B', false],
    ['A\tB', false],
    ['A\u200bB', false],
  ])('code %j is a code: %s', (code, ok) => {
    expect(offerCodeProblem(code) === null).toBe(ok);
  });
});

describe('a pool running low', () => {
  test('low is remaining <= max(10, 10% of total), at every size', () => {
    for (let total = 0; total <= 400; total++) {
      for (const claimed of [0, total - 41, total - 40, total - 16, total - 15, total - 11, total - 10, total - 1, total].filter((c) => c >= 0 && c <= total)) {
        const remaining = total - claimed;
        // The definition, by hand: at least ten codes, or a tenth of the pool, whichever is more.
        const threshold = total / 10 > 10 ? total / 10 : 10;
        expect(offerPoolStats('p', total, claimed)).toEqual({ pool: 'p', total, claimed, remaining, low: remaining <= threshold });
      }
    }
    expect(offerPoolStats('p', 150, 135).low).toBe(true);
    expect(offerPoolStats('p', 150, 134).low).toBe(false);
    expect(offerPoolStats('p', 50, 40).low).toBe(true);
    expect(offerPoolStats('p', 50, 39).low).toBe(false);
  });

  test('a process warns once when a pool runs low, once more when it is empty, and again after a refill', () => {
    const watch = new OfferPoolWatch();
    const warnings = (claims: Array<[number, number]>) => claims.map(([total, claimed]) => watch.observe(offerPoolStats('winback-10', total, claimed)));
    expect(warnings([[150, 100], [150, 134], [150, 135], [150, 138], [150, 149]])).toEqual([
      null,
      null,
      '[codes] pool "winback-10" is running low: 15 of 150 codes left; import more with microflows codes import winback-10 <file>',
      null,
      null,
    ]);
    expect(warnings([[150, 150], [150, 150]])).toEqual(['[codes] pool "winback-10" is empty: 0 of 150 codes left, and sends show their fallback; import more with microflows codes import winback-10 <file>', null]);
    // More codes imported: the pool is fine again, and warns again when it runs low.
    expect(warnings([[300, 150], [300, 270]])).toEqual([null, expect.stringContaining('is running low: 30 of 300 codes left')]);
    // Figures of concurrent claims arrive out of order: a late one from above the threshold does not reset the pool.
    const racing = new OfferPoolWatch();
    const seen = [[150, 136], [150, 134], [150, 137]].map(([total, claimed]) => racing.observe(offerPoolStats('race', total!, claimed!)));
    expect(seen).toEqual([expect.stringContaining('running low: 14 of 150'), null, null]);
    // Another pool has warnings of its own.
    expect(watch.observe(offerPoolStats('vip', 20, 10))).toContain('pool "vip" is running low: 10 of 20');
  });
});

describe('the offer_code helper in templates', () => {
  const handlebars = templateHandlebars();
  const RUNTIME: Omit<RenderRuntime, 'sites' | 'fallbacks'> = {
    locale: 'en-US',
    timezone: 'UTC',
    currency: 'USD',
    shopUrl: 'https://shop.example',
    linkDomains: ['shop.example'],
    link: (url) => url,
    unsubscribeUrl: 'https://t.example/u/1',
    openPixelUrl: null,
    recommend: null,
    productUrl: () => undefined,
  };
  const template = (body: string, subject = 'Come back') =>
    `---\nsubject: "${subject}"\ncategory: transactional\n---\n<mjml><mj-body><mj-section><mj-column>\n${body}\n</mj-column></mj-section></mj-body></mjml>`;
  const compile = (text: string) => compileTemplate('winback', { file: 'templates/winback.mjml', text }, { partials: new Map(), layouts: new Map() }, handlebars);
  function compiled(text: string): CompiledTemplate {
    const result = compile(text);
    if (!result.template) throw new Error(result.problems.map((p) => `${p.line}: ${p.message}`).join('\n'));
    return result.template;
  }
  const render = (t: CompiledTemplate, offerCodes?: ReadonlyMap<string, string | null>) => renderTemplate(t, { profile: {}, consent: {} }, { ...RUNTIME, ...(offerCodes ? { offerCodes } : {}) });

  const GUARDED = template(
    '<mj-text>{{#if (offer_code pool="winback-10")}}Use code <strong>{{offer_code pool="winback-10"}}</strong>{{else}}Use code BACK10{{/if}}</mj-text>\n<mj-text>VIP: {{offer_code pool="vip-20"}}</mj-text>',
    'Your code {{offer_code pool=\\"winback-10\\"}}',
  );

  test('the pools a template names are listed, sorted, once each', () => {
    expect(compiled(GUARDED).offerPools).toEqual(['vip-20', 'winback-10']);
    expect(compiled(template('<mj-text>no codes here</mj-text>')).offerPools).toEqual([]);
  });

  test('the claimed code shows in the subject, the HTML and the text, escaped in HTML only', () => {
    const t = compiled(GUARDED);
    const rendered = render(t, new Map([['winback-10', 'W10-A&B'], ['vip-20', 'VIP-7']]));
    expect(rendered.subject).toBe('Your code W10-A&B');
    expect(rendered.html).toContain('Use code <strong>W10-A&amp;B</strong>');
    expect(rendered.html).toContain('VIP: VIP-7');
    expect(rendered.text).toContain('Use code W10-A&B');
    expect(rendered.fallbacks).toEqual([]);
  });

  test('an empty pool renders the fallback and records it, with the template line, once per site', () => {
    const t = compiled(GUARDED);
    const rendered = render(t, new Map([['winback-10', null], ['vip-20', 'VIP-7']]));
    expect(rendered.subject).toBe('Your code');
    expect(rendered.html).toContain('Use code BACK10');
    expect(rendered.html).not.toContain('<strong>');
    expect(rendered.fallbacks).toEqual(
      expect.arrayContaining([
        { at: 'templates/winback.mjml:6', expression: 'offer_code pool="winback-10"', reason: 'offer code pool "winback-10" is empty' },
        { at: 'templates/winback.mjml:6', expression: '#if (offer_code pool="winback-10")', reason: 'empty or missing' },
        { at: 'templates/winback.mjml:2', expression: 'offer_code pool="winback-10"', reason: 'offer code pool "winback-10" is empty' },
      ]),
    );
    expect(rendered.fallbacks).toHaveLength(3);
    // Without any claimed codes (a render that claims none), every pool falls back.
    const unclaimed = render(t);
    expect(unclaimed.html).toContain('VIP: <');
    expect(unclaimed.fallbacks.filter((f) => f.reason === 'offer code pool "vip-20" is empty')).toEqual([{ at: 'templates/winback.mjml:7', expression: 'offer_code pool="vip-20"', reason: 'offer code pool "vip-20" is empty' }]);
  });

  test.each([
    ['{{offer_code}}', 'offer_code needs its pool'],
    ['{{offer_code pool=event.properties.pool}}', 'offer_code\'s pool must be a literal or data.<key>, not the field event.properties.pool'],
    ['{{offer_code "winback-10"}}', 'offer_code takes no positional argument'],
    ['{{offer_code pool="Winback 10"}}', 'offer_code pool=: "Winback 10" is not a pool id'],
    ['{{offer_code pool="w" size=2}}', 'offer_code takes only pool=, not size='],
    ['{{#if (offer_code pool=profile.pool)}}a{{else}}b{{/if}}', 'offer_code\'s pool must be a literal or data.<key>, not the field profile.pool'],
  ])('%s is refused with the template line', (call, message) => {
    const result = compile(template(`<mj-text>\n\n${call}</mj-text>`));
    expect(result.template).toBeNull();
    expect(result.problems.filter((p) => p.severity === 'error')).toEqual([{ file: 'templates/winback.mjml', line: 8, severity: 'error', message: expect.stringContaining(message) }]);
  });

  test('pool=data.<key> takes the pool from the send step\'s data: resolved per send, a missing or bad one names no pool', () => {
    expect(resolveOfferPools(['data.code_pool', 'vip-20'], { code_pool: 'winback-20' })).toEqual(['vip-20', 'winback-20']);
    expect(resolveOfferPools(['data.code_pool'], {})).toEqual([]);
    expect(resolveOfferPools(['data.code_pool'], { code_pool: 'Not A Pool' })).toEqual([]);
    expect(resolveOfferPools(['data.code_pool'], undefined)).toEqual([]);
    expect(previewOfferCodes(['data.code_pool'], { code_pool: 'winback-20' })).toEqual(new Map([['winback-20', PREVIEW_OFFER_CODE]]));
    const result = compile(template('<mj-text>{{#if (offer_code pool=data.code_pool)}}Code {{offer_code pool=data.code_pool}}{{else}}No code{{/if}}</mj-text>'));
    expect(result.template?.offerPools).toEqual(['data.code_pool']);
  });

  test('a misspelt helper is refused, and the message lists offer_code', () => {
    const result = compile(template('<mj-text>{{offer_cod pool="w"}}</mj-text>'));
    expect(result.problems.find((p) => p.severity === 'error')?.message).toMatch(/unknown helper "offer_cod": use one of .*offer_code/);
  });
});
