// The email trait holds one plain mailbox: what nodemailer would send to is exactly the value, and nothing else is
// taken. Fixed cases for each way a value can carry more than one recipient or a header, both sides of the length
// limit, and a property over generated lists, groups, display names and injected characters, checked against
// nodemailer's own parser (the one that reads the address at send time).
import fc from 'fast-check';
import addressparser from 'nodemailer/lib/addressparser';
import { isMailbox, mailboxProblem, MAX_EMAIL_LENGTH } from '../../core/email-address';
import { fuzzRun } from '../support/fuzz-seed';

const fuzz = fuzzRun('test/core/email-address.test.ts');

/** A syntactically fine address of exactly `length` characters: a 64-character local part and 63-character labels. */
function addressOfLength(length: number): string {
  const local = 'l'.repeat(64);
  let domain = 'com';
  while (local.length + 1 + domain.length < length) {
    const room = length - (local.length + 1 + domain.length) - 1;
    domain = `${'d'.repeat(Math.min(63, Math.max(1, room)))}.${domain}`;
  }
  return `${local}@${domain}`;
}

describe('mailboxProblem', () => {
  it.each(['ada@example.com', 'Ada.Lovelace@Example.COM', 'ada+orders@mail.example.co.uk', "o'brien@example.ie", 'user_1@sub-domain.example.org', 'ä@bücher.de'])('accepts %s', (address) => {
    expect(mailboxProblem(address)).toBeUndefined();
    expect(isMailbox(address)).toBe(true);
  });

  it.each([
    ['a list', 'victim@example.com, second@example.org', /holds 2 addresses/],
    ['a list without a space', 'victim@example.com,second@example.org', /holds 2 addresses/],
    ['a list with ;', 'victim@example.com;second@example.org', /holds 2 addresses/],
    ['a list with a space only', 'victim@example.com second@example.org', /display name|not a valid/],
    ['a group', 'friends: a@example.com, b@example.org;', /address group/],
    ['an empty group', 'undisclosed-recipients:;', /address group/],
    ['a display name', 'Ana <ana@example.com>', /display name.*"ana@example\.com"/],
    ['a quoted display name with a comma', '"Doe, Jane" <jane@example.com>', /display name/],
    ['angle brackets', '<ana@example.com>', /angle brackets/],
    ['a comment', 'ana@example.com (Ana)', /comment/],
    ['a quoted local part nodemailer reads apart', '"a b"@example.com', /display name|not a valid/],
    ['CRLF and a header', 'ana@example.com\r\nBcc: everyone@example.org', /control character/],
    ['a bare LF', 'ana@example.com\nsecond@example.org', /control character/],
    ['a tab', 'ana@example.com\t', /control character/],
    ['a NUL', 'ana@exa\u0000mple.com', /control character/],
    ['a Unicode line separator', 'ana@example.com\u2028x', /control character/],
    ['spaces around it', ' ana@example.com ', /spaces around it: send "ana@example\.com"/],
    ['no domain', 'ana@', /not a valid/],
    ['no at sign', 'no-at-sign', /not a valid/],
    ['no TLD', 'ana@localhost', /not a valid/],
    ['an IP domain', 'ana@[192.0.2.1]', /not a valid|angle|display/],
    ['a 65-character local part', `${'l'.repeat(65)}@example.com`, /not a valid/],
    ['the empty string', '', /not a valid/],
  ])('refuses %s, saying what to fix', (_what, value, message) => {
    const problem = mailboxProblem(value);
    expect(problem).toMatch(message);
    expect(isMailbox(value)).toBe(false);
  });

  it.each([
    [42, 'a number'],
    [['a@example.com'], 'an array'],
    [{ address: 'a@example.com' }, 'an object'],
    [null, 'null'],
  ])('refuses %p as not a string', (value, described) => {
    expect(mailboxProblem(value)).toBe(`must be a string holding one email address (e.g. "ada@example.com"), got ${described}`);
  });

  it(`takes ${MAX_EMAIL_LENGTH} characters and refuses ${MAX_EMAIL_LENGTH + 1}`, () => {
    const longest = addressOfLength(MAX_EMAIL_LENGTH);
    const tooLong = addressOfLength(MAX_EMAIL_LENGTH + 1);
    expect([longest.length, tooLong.length]).toEqual([MAX_EMAIL_LENGTH, MAX_EMAIL_LENGTH + 1]);
    expect(mailboxProblem(longest)).toBeUndefined();
    expect(mailboxProblem(tooLong)).toBe(`is ${MAX_EMAIL_LENGTH + 1} characters long; an email address has at most ${MAX_EMAIL_LENGTH}`);
  });
});

describe('mailboxProblem over generated values', () => {
  const separators = fc.constantFrom(',', ', ', ';', ' ; ', ' ', '\n', '\r\n');
  const injected = fc.constantFrom('\r', '\n', '\r\n', '\t', '\u0000', '\u007f', '\u0085', '\u2028', ' ', '"', '<', '>', '(', ')', ',', ';', ':', '\\', '@');
  const list = fc.tuple(fc.array(fc.emailAddress(), { minLength: 2, maxLength: 4 }), separators).map(([addresses, sep]) => addresses.join(sep));
  const group = fc.tuple(fc.string({ minLength: 1, maxLength: 10 }), fc.array(fc.emailAddress(), { maxLength: 3 })).map(([name, addresses]) => `${name}: ${addresses.join(', ')};`);
  const named = fc.tuple(fc.string({ maxLength: 12 }), fc.emailAddress()).map(([name, address]) => `${name} <${address}>`);
  const withInjection = fc.tuple(fc.emailAddress(), injected, fc.nat()).map(([address, char, at]) => {
    const i = at % (address.length + 1);
    return `${address.slice(0, i)}${char}${address.slice(i)}`;
  });
  const anyValue = fc.oneof(fc.emailAddress(), list, group, named, withInjection, fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme-ascii', maxLength: 300 }));

  it('accepts a value only when nodemailer reads it as that one address, with no name, control character or excess length', () => {
    fuzz.check(
      fc.property(anyValue, (value) => {
        if (!isMailbox(value)) return;
        expect(addressparser(value, { flatten: true })).toEqual([{ address: value, name: '' }]);
        expect(value.length).toBeLessThanOrEqual(MAX_EMAIL_LENGTH);
        // Written out rather than reusing the module's pattern: no C0/C1 control and no line separator.
        expect([...value].some((c) => c.charCodeAt(0) < 0x20 || (c.charCodeAt(0) >= 0x7f && c.charCodeAt(0) <= 0x9f) || c === '\u2028' || c === '\u2029')).toBe(false);
      }),
      2000,
    );
  });

  it('refuses every list, group and display-name form of generated addresses', () => {
    fuzz.check(
      fc.property(fc.oneof(list, group, named), (value) => {
        expect(mailboxProblem(value)).toEqual(expect.any(String));
      }),
      1000,
    );
  });

  it('accepts every generated plain address within the length limit', () => {
    fuzz.check(
      fc.property(
        fc.emailAddress().filter((address) => address.length <= MAX_EMAIL_LENGTH),
        (address) => {
          expect(mailboxProblem(address)).toBeUndefined();
        },
      ),
      1000,
    );
  });
});
