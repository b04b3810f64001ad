// Turns email service providers' event webhooks (SendGrid, Postmark) into one canonical engagement event
// shape, so an open or a bounce means the same thing whichever provider reported it.
import { BadEventError } from './errors';
import { parseIsoTimestamp as parseIsoDate } from './segment-spec';

export const ENGAGEMENT_EVENT_NAMES = [
  'Email Delivered',
  'Email Opened',
  'Email Link Clicked',
  'Email Bounced',
  'Email Marked as Spam',
  'Unsubscribed',
] as const;
export type EngagementEventName = (typeof ENGAGEMENT_EVENT_NAMES)[number];

export interface EngagementEvent {
  /** stable id for dedupe of webhook retries, e.g. `sendgrid:<sg_event_id>` or `postmark:<RecordType>:<MessageID>:<time ms>` */
  messageId: string;
  name: EngagementEventName;
  /** recipient, trimmed and lower-cased */
  email: string;
  /**
   * The custom args' / metadata's `customer_id`: a claim, not an identity. Whoever can get a message sent to their own
   * address can put another customer's id here, so it counts only when that customer's email is `email`
   * (attributeEngagement).
   */
  claimedCustomerId: string | null;
  /** The Message-ID header of the email, when the provider echoes ours (SendGrid's `smtp-id`), in angle brackets; else null. */
  sentMessageId: string | null;
  /** epoch ms */
  timestamp: number;
  /**
   * Canonical properties: provider ('sendgrid' | 'postmark'), provider_message_id, url (clicks),
   * bounce_type ('hard' | 'soft') and reason (bounces), user_agent and ip when given, and delivery_key,
   * flow_id, step_id, variant when the sender put them in custom args / metadata.
   */
  properties: Record<string, unknown>;
}

export interface IgnoredItem {
  /** position in the SendGrid batch; always 0 for Postmark, which posts one event per request */
  index: number;
  reason: string;
}

export interface NormalizedWebhook {
  events: EngagementEvent[];
  ignored: IgnoredItem[];
}

/** Sender-supplied keys copied from custom args / metadata into properties (customer_id becomes claimedCustomerId). */
const SENDER_KEYS = ['delivery_key', 'flow_id', 'step_id', 'variant'] as const;

type Item = { event: EngagementEvent } | { ignore: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What was given, short enough for an error message: a webhook body can be large. */
function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  if (isRecord(value)) return 'an object';
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function nonEmptyString(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' ? value : null;
}

/** Custom args arrive as strings, but a sender may have put a number; anything else is not an id. */
function idLike(value: unknown): string | null {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return nonEmptyString(value);
}

function readEmail(value: unknown): string | null {
  const text = nonEmptyString(value)?.trim().toLowerCase();
  return text && /^[^@\s]+@[^@\s]+$/.test(text) ? text : null;
}

function senderFields(source: unknown): { claimedCustomerId: string | null; properties: Record<string, unknown> } {
  if (!isRecord(source)) return { claimedCustomerId: null, properties: {} };
  const properties: Record<string, unknown> = {};
  for (const key of SENDER_KEYS) {
    const value = idLike(source[key]);
    if (value !== null) properties[key] = value;
  }
  return { claimedCustomerId: idLike(source.customer_id), properties };
}

function httpUrl(value: unknown): string | null {
  const text = nonEmptyString(value);
  return text && /^https?:\/\//i.test(text) ? text : null;
}

/** A full date-time with an explicit zone: a provider's event time must not depend on our server's zone. */
const DATE_TIME_WITH_ZONE = /T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})$/i;

/** Postmark's times are ISO 8601 with up to 7 fractional digits and an offset; parsed strictly, to ms. */
export function parseIsoTimestamp(value: unknown): number | null {
  if (typeof value !== 'string' || !DATE_TIME_WITH_ZONE.test(value.trim())) return null;
  return parseIsoDate(value) ?? null;
}

// ---------------------------------------------------------------------------------------------------
// SendGrid: one POST carries a JSON array of events; custom args sit at the top level of each event.

const SENDGRID_NAMES: Record<string, EngagementEventName> = {
  delivered: 'Email Delivered',
  open: 'Email Opened',
  click: 'Email Link Clicked',
  bounce: 'Email Bounced',
  spamreport: 'Email Marked as Spam',
  unsubscribe: 'Unsubscribed',
  group_unsubscribe: 'Unsubscribed',
};

const SENDGRID_SKIPPED: Record<string, string> = {
  processed: 'accepted for sending, not an engagement event',
  deferred: 'a temporary delivery delay; SendGrid retries, and a final failure arrives as a bounce',
  dropped:
    'never sent: SendGrid suppressed the address (earlier bounce, unsubscribe or spam report, already reported by that event) or found it invalid',
  group_resubscribe: 'a resubscribe; consent is only granted through microflows itself, never from a provider webhook',
};

/** Past this a "unix seconds" value is really milliseconds (year 5138), which is a sender bug, not a time. */
const MAX_UNIX_SECONDS = 1e11;

function sendGridItem(raw: unknown, index: number): Item {
  const at = `[${index}]`;
  if (!isRecord(raw)) return { ignore: `${at}: expected an event object, got ${shown(raw)}` };
  const kind = nonEmptyString(raw.event);
  if (kind === null) return { ignore: `${at}.event: missing` };
  const skipped = SENDGRID_SKIPPED[kind];
  if (skipped !== undefined) return { ignore: `${at}: "${kind}" ignored: ${skipped}` };
  const name = SENDGRID_NAMES[kind];
  if (name === undefined) return { ignore: `${at}: unknown SendGrid event "${kind}"` };

  const email = readEmail(raw.email);
  if (email === null) return { ignore: `${at}.email: expected the recipient's address, got ${shown(raw.email)}` };
  const seconds = raw.timestamp;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0 || seconds >= MAX_UNIX_SECONDS) {
    return { ignore: `${at}.timestamp: expected unix seconds, got ${shown(seconds)}` };
  }
  const timestamp = Math.round(seconds * 1000);

  const eventId = nonEmptyString(raw.sg_event_id);
  const sgMessageId = nonEmptyString(raw.sg_message_id);
  if (eventId === null && sgMessageId === null) {
    return { ignore: `${at}.sg_event_id: missing, and no sg_message_id either, so retries could not be deduplicated` };
  }

  const sender = senderFields(raw);
  const properties: Record<string, unknown> = { provider: 'sendgrid' };
  if (sgMessageId !== null) properties.provider_message_id = sgMessageId;

  if (name === 'Email Link Clicked') {
    const url = httpUrl(raw.url);
    if (url === null) return { ignore: `${at}.url: a click without an http(s) url, got ${shown(raw.url)}` };
    properties.url = url;
  }
  if (name === 'Email Bounced') {
    // "blocked" is a rejection for reputation or content reasons that SendGrid does not treat as permanent
    // for the address (it goes to the Blocks list, not Bounces); "bounce" is the permanent kind.
    properties.bounce_type = raw.type === 'blocked' ? 'soft' : 'hard';
    const reason = nonEmptyString(raw.reason) ?? nonEmptyString(raw.status);
    if (reason !== null) properties.reason = reason;
  }
  if (kind === 'group_unsubscribe' && idLike(raw.asm_group_id) !== null) properties.group_id = idLike(raw.asm_group_id);
  if (name === 'Email Opened' && typeof raw.sg_machine_open === 'boolean') properties.machine_open = raw.sg_machine_open;
  const userAgent = nonEmptyString(raw.useragent);
  if (userAgent !== null) properties.user_agent = userAgent;
  const ip = nonEmptyString(raw.ip);
  if (ip !== null && name !== 'Email Delivered') properties.ip = ip; // on delivered, ip is SendGrid's sending IP
  Object.assign(properties, sender.properties);

  const messageId = eventId !== null ? `sendgrid:${eventId}` : `sendgrid:${sgMessageId}:${kind}:${timestamp}`;
  const smtpId = nonEmptyString(raw['smtp-id'])?.trim();
  const sentMessageId = smtpId === undefined ? null : smtpId.startsWith('<') ? smtpId : `<${smtpId}>`;
  return { event: { messageId, name, email, claimedCustomerId: sender.claimedCustomerId, sentMessageId, timestamp, properties } };
}

/**
 * Normalizes one SendGrid Event Webhook POST body (a JSON array). Throws BadEventError only when the body
 * is not an array; each unusable or non-engagement item goes to `ignored` with its index and why.
 */
export function normalizeSendGridEvents(body: unknown): NormalizedWebhook {
  if (!Array.isArray(body)) {
    throw new BadEventError(`expected the SendGrid Event Webhook's JSON array of events, got ${shown(body)}`);
  }
  return collect(body.map((raw, index) => ({ index, item: sendGridItem(raw, index) })));
}

// ---------------------------------------------------------------------------------------------------
// Postmark: one POST carries one event object; RecordType says which; metadata sits under `Metadata`.

/** Where each RecordType keeps the recipient and the time; Bounce and SpamComplaint use `Email`, the rest `Recipient`. */
const POSTMARK_FIELDS: Record<string, { email: string; time: string }> = {
  Delivery: { email: 'Recipient', time: 'DeliveredAt' },
  Bounce: { email: 'Email', time: 'BouncedAt' },
  SpamComplaint: { email: 'Email', time: 'BouncedAt' },
  Open: { email: 'Recipient', time: 'ReceivedAt' },
  Click: { email: 'Recipient', time: 'ReceivedAt' },
  SubscriptionChange: { email: 'Recipient', time: 'ChangedAt' },
};

/** Postmark bounce Type → what it means for us. Types not listed are ignored (reported with their name). */
const POSTMARK_BOUNCE_TYPES: Record<string, { name: EngagementEventName; bounceType?: 'hard' | 'soft' } | { ignore: string }> = {
  HardBounce: { name: 'Email Bounced', bounceType: 'hard' },
  BadEmailAddress: { name: 'Email Bounced', bounceType: 'hard' },
  SoftBounce: { name: 'Email Bounced', bounceType: 'soft' },
  // Rejections for reputation, policy or content, the counterpart of SendGrid's "blocked".
  Blocked: { name: 'Email Bounced', bounceType: 'soft' },
  DMARCPolicy: { name: 'Email Bounced', bounceType: 'soft' },
  SpamNotification: { name: 'Email Bounced', bounceType: 'soft' },
  SpamComplaint: { name: 'Email Marked as Spam' },
  Unsubscribe: { name: 'Unsubscribed' },
  Transient: { ignore: 'a temporary delivery delay (like SendGrid "deferred"); a final failure arrives as its own bounce' },
  DnsError: { ignore: 'a temporary DNS failure (like SendGrid "deferred")' },
  ManuallyDeactivated: { ignore: 'the address was already deactivated, so nothing was sent (like SendGrid "dropped")' },
};

/** Bounce TypeCode → Type, for payloads that carry only the code. */
const POSTMARK_TYPE_CODES: Record<number, string> = {
  1: 'HardBounce',
  2: 'Transient',
  16: 'Unsubscribe',
  256: 'DnsError',
  512: 'SpamNotification',
  4096: 'SoftBounce',
  100000: 'BadEmailAddress',
  100001: 'SpamComplaint',
  100002: 'ManuallyDeactivated',
  100006: 'Blocked',
  100009: 'DMARCPolicy',
};

function postmarkItem(raw: Record<string, unknown>): Item {
  const at = '[0]';
  const recordType = nonEmptyString(raw.RecordType);
  if (recordType === null) {
    return { ignore: `${at}.RecordType: missing (an inbound-email webhook pointed at the event endpoint?)` };
  }
  const fields = POSTMARK_FIELDS[recordType];
  if (fields === undefined) return { ignore: `${at}: unknown Postmark RecordType "${recordType}"` };

  let name: EngagementEventName;
  let bounceType: 'hard' | 'soft' | undefined;
  switch (recordType) {
    case 'Delivery':
      name = 'Email Delivered';
      break;
    case 'Open':
      name = 'Email Opened';
      break;
    case 'Click':
      name = 'Email Link Clicked';
      break;
    case 'SpamComplaint':
      name = 'Email Marked as Spam';
      break;
    case 'Bounce': {
      const type = nonEmptyString(raw.Type) ?? (typeof raw.TypeCode === 'number' ? POSTMARK_TYPE_CODES[raw.TypeCode] : undefined);
      if (type === undefined) return { ignore: `${at}.Type: a bounce without a Type or a known TypeCode` };
      const mapped = POSTMARK_BOUNCE_TYPES[type];
      if (mapped === undefined) return { ignore: `${at}.Type: bounce type "${type}" is not a delivery failure to the recipient` };
      if ('ignore' in mapped) return { ignore: `${at}.Type: bounce type "${type}" ignored: ${mapped.ignore}` };
      name = mapped.name;
      bounceType = mapped.bounceType;
      break;
    }
    default: {
      // SubscriptionChange
      if (raw.SuppressSending !== true) {
        return { ignore: `${at}.SuppressSending: a reactivation (resubscribe); consent is only granted through microflows itself` };
      }
      const reason = nonEmptyString(raw.SuppressionReason);
      if (reason === 'HardBounce' || reason === 'SpamComplaint') {
        // Postmark suppresses after a hard bounce or complaint and says so here too; that event was already
        // reported by its own webhook, and it is not the recipient withdrawing consent.
        return { ignore: `${at}.SuppressionReason: suppression after ${reason} is reported by the ${reason === 'HardBounce' ? 'Bounce' : 'SpamComplaint'} webhook` };
      }
      name = 'Unsubscribed';
    }
  }

  const email = readEmail(raw[fields.email] ?? raw.Email ?? raw.Recipient);
  if (email === null) return { ignore: `${at}.${fields.email}: expected the recipient's address, got ${shown(raw[fields.email])}` };
  const timestamp = parseIsoTimestamp(raw[fields.time]);
  if (timestamp === null) return { ignore: `${at}.${fields.time}: expected an ISO 8601 time, got ${shown(raw[fields.time])}` };

  // The delivery webhook has been documented with both spellings.
  const providerMessageId = nonEmptyString(raw.MessageID) ?? nonEmptyString(raw.MessageId);
  const sender = senderFields(raw.Metadata);
  const properties: Record<string, unknown> = { provider: 'postmark' };
  if (providerMessageId !== null) properties.provider_message_id = providerMessageId;

  if (name === 'Email Link Clicked') {
    const url = httpUrl(raw.OriginalLink);
    if (url === null) return { ignore: `${at}.OriginalLink: a click without an http(s) url, got ${shown(raw.OriginalLink)}` };
    properties.url = url;
  }
  if (name === 'Email Bounced') {
    properties.bounce_type = bounceType;
    const reason = nonEmptyString(raw.Details) ?? nonEmptyString(raw.Description);
    if (reason !== null) properties.reason = reason;
  }
  if (recordType === 'SubscriptionChange') {
    const origin = nonEmptyString(raw.Origin);
    if (origin !== null) properties.origin = origin.toLowerCase();
    const stream = nonEmptyString(raw.MessageStream);
    if (stream !== null) properties.message_stream = stream;
  }
  const userAgent = nonEmptyString(raw.UserAgent);
  if (userAgent !== null) properties.user_agent = userAgent;
  const ip = isRecord(raw.Geo) ? nonEmptyString(raw.Geo.IP) : null;
  if (ip !== null) properties.ip = ip;
  Object.assign(properties, sender.properties);

  // MessageID is null for suppressions made by the sender or an admin; the recipient keeps the id stable.
  const messageId = `postmark:${recordType}:${providerMessageId ?? email}:${timestamp}`;
  // Postmark's MessageID is its own id, not the Message-ID header we sent, so nothing here ties the event to a send.
  return { event: { messageId, name, email, claimedCustomerId: sender.claimedCustomerId, sentMessageId: null, timestamp, properties } };
}

/**
 * Normalizes one Postmark webhook POST body (one JSON object). Throws BadEventError only when the body is
 * not an object; an unusable or non-engagement event goes to `ignored` (index 0) with why.
 */
export function normalizePostmarkEvent(body: unknown): NormalizedWebhook {
  if (!isRecord(body)) {
    throw new BadEventError(`expected one Postmark webhook event object, got ${shown(body)}`);
  }
  return collect([{ index: 0, item: postmarkItem(body) }]);
}

function collect(items: Array<{ index: number; item: Item }>): NormalizedWebhook {
  const result: NormalizedWebhook = { events: [], ignored: [] };
  for (const { index, item } of items) {
    if ('event' in item) result.events.push(item.event);
    else result.ignored.push({ index, reason: item.ignore });
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------
// Whose event it is. The recipient address is what the provider actually delivered to; ids the payload carries
// (custom args, metadata) were chosen by whoever sent the message, and count only when they agree with it.

/** A send in the delivery ledger, as far as attributing an event to it needs. */
export interface SendRecipient {
  deliveryKey: string;
  customerId: string;
  /** The address the email went to. */
  to: string;
}

/** The reads attributeEngagement makes, in its order of trust; each is made only when the ones before found nothing. */
export interface RecipientLookups {
  sendByMessageId(messageId: string): Promise<SendRecipient | undefined>;
  sendByDeliveryKey(deliveryKey: string): Promise<SendRecipient | undefined>;
  /** The customer an id belongs to (after merges) and that customer's email; undefined when no profile has it. */
  customerEmail(customerId: string): Promise<{ customerId: string; email: string | null } | undefined>;
  customerIdByEmail(email: string): Promise<string | undefined>;
}

export interface Attribution {
  /** null: no customer has the recipient's address; the event is not recorded. */
  customerId: string | null;
  /** How it was found: the echoed Message-ID, the payload's delivery_key, its customer_id, or the address alone. */
  via: 'message-id' | 'delivery-key' | 'customer-id' | 'email' | null;
  /** The event's properties to record: without the sender keys when its delivery_key names a send to someone else. */
  properties: Record<string, unknown>;
  /** Payload ids that disagreed with the recipient and were ignored, with why: for the server log, never the answer. */
  distrusted: string[];
}

/** Message-IDs microflows sends end so (activities/index.ts): only those can be in the ledger, so others are not looked up. */
const OWN_MESSAGE_ID = /@microflows>$/;

const sameAddress = (a: string | null, b: string) => a !== null && a.trim().toLowerCase() === b;

/**
 * The customer an engagement event belongs to, trusting in this order: the send whose Message-ID the provider
 * echoed, the send the payload's delivery_key names, the customer its customer_id names (each only when its
 * address is the event's recipient), then the customer whose profile has the recipient's address.
 */
export async function attributeEngagement(event: EngagementEvent, lookups: RecipientLookups): Promise<Attribution> {
  const distrusted: string[] = [];
  let properties = event.properties;
  const found = (customerId: string, via: Exclude<Attribution['via'], null>): Attribution => ({ customerId, via, properties, distrusted });

  if (event.sentMessageId !== null && OWN_MESSAGE_ID.test(event.sentMessageId)) {
    const send = await lookups.sendByMessageId(event.sentMessageId);
    if (send && sameAddress(send.to, event.email)) {
      // The send it answers, named as our own links name it, so the report counters find it (store/metrics-store).
      properties = { ...properties, delivery_key: send.deliveryKey };
      return found(send.customerId, 'message-id');
    }
    if (send) distrusted.push(`Message-ID ${event.sentMessageId} was sent to another address`);
  }
  const deliveryKey = typeof properties.delivery_key === 'string' ? properties.delivery_key : null;
  if (deliveryKey !== null) {
    const send = await lookups.sendByDeliveryKey(deliveryKey);
    if (send && sameAddress(send.to, event.email)) return found(send.customerId, 'delivery-key');
    if (send) {
      // The flow, step and variant came with that key: they describe someone else's email.
      properties = Object.fromEntries(Object.entries(properties).filter(([key]) => !(SENDER_KEYS as readonly string[]).includes(key)));
      distrusted.push(`delivery_key ${JSON.stringify(deliveryKey)} names a send to another address`);
    }
  }
  if (event.claimedCustomerId !== null) {
    const customer = await lookups.customerEmail(event.claimedCustomerId);
    if (customer && sameAddress(customer.email, event.email)) return found(customer.customerId, 'customer-id');
    distrusted.push(`customer_id ${JSON.stringify(event.claimedCustomerId)} ${customer ? 'has another email' : 'is no customer'}`);
  }
  const byEmail = await lookups.customerIdByEmail(event.email);
  return byEmail === undefined ? { customerId: null, via: null, properties, distrusted } : found(byEmail, 'email');
}

/** An address for a log line: enough to recognise it, not enough to collect it (`a***@example.com`). */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at < 1) return '***';
  return `${email[0]}***${email.slice(at)}`;
}
