// What the email trait may hold: exactly one plain mailbox (`ada@example.com`). Checked with nodemailer's own address
// parser, the one that would read the value at send time and turn a list or a group into several recipients, and
// with validator's isEmail for the address itself. Pure.
import addressparser from 'nodemailer/lib/addressparser';
import isEmail from 'validator/lib/isEmail';

/** RFC 5321's limit on a forward path (256 octets with its angle brackets). */
export const MAX_EMAIL_LENGTH = 254;

// C0 and C1 controls (CR and LF among them: a header injection), DEL, and the Unicode line and paragraph separators.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

const EXAMPLE = 'e.g. "ada@example.com"';

function shown(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  const type = typeof value;
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

type Parsed = addressparser.AddressOrGroup;

function recipients(entries: Parsed[]): string[] {
  return entries.flatMap((entry) => ('group' in entry ? recipients(entry.group) : [entry.address]));
}

/**
 * Why `value` is not exactly one plain mailbox, as the rest of a sentence about it (`traits.email: holds 2 addresses
 * …`) that says how to fix it; undefined when it is one.
 * Refused: anything but a string, control characters (CR/LF), more than 254 characters, spaces around it, a list
 * (`a@x.com, b@y.com` or `;`), a group (`friends: a@x.com, b@y.com;`), a display name, angle brackets or a comment
 * (`Ana <ana@x.com>`, `ana@x.com (Ana)`), and whatever isEmail does not accept (no TLD, an IP domain, a quoted local
 * part nodemailer would read differently).
 */
export function mailboxProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return `must be a string holding one email address (${EXAMPLE}), got ${describe(value)}`;
  if (CONTROL.test(value)) return `contains a control character (a line break, tab or other): give one address on one line, ${EXAMPLE}`;
  if (value.length > MAX_EMAIL_LENGTH) return `is ${value.length} characters long; an email address has at most ${MAX_EMAIL_LENGTH}`;
  if (value.trim() !== value) return `has spaces around it: send ${shown(value.trim())}`;
  const parsed = addressparser(value);
  if (parsed.some((entry) => 'group' in entry)) return `is an address group (${shown(value)}): give exactly one address, ${EXAMPLE}`;
  const addresses = recipients(parsed);
  if (addresses.length > 1) return `holds ${addresses.length} addresses (${shown(value)}): give exactly one, ${EXAMPLE}`;
  const [only] = parsed as addressparser.Address[];
  // What nodemailer would send to must be the value itself: a display name, <brackets> or a (comment) is not a bare address.
  if (only !== undefined && only.address !== '' && (only.name !== '' || only.address !== value)) {
    return `has a display name, angle brackets or a comment (${shown(value)}): give the bare address, e.g. ${JSON.stringify(only.address)}`;
  }
  if (!isEmail(value, { allow_display_name: false, require_tld: true, allow_ip_domain: false, ignore_max_length: false })) {
    return `is not a valid email address (${shown(value)}): give one address, ${EXAMPLE}`;
  }
  return undefined;
}

/** Whether `value` is exactly one plain mailbox (see mailboxProblem). */
export function isMailbox(value: unknown): value is string {
  return mailboxProblem(value) === undefined;
}
