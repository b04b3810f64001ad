// The ingest fuzz over key kinds and limits: seeded random sequences of Segment calls over real HTTP, each sent with
// a random credential (the write key, stored server and client keys, revoked, unknown and admin keys, none), with
// reserved event names, timestamps inside and beyond the client skew, identity pairs and aliases that reuse earlier
// ids, and email traits valid and not (lists, groups, CRLF). After every call a model written from the rules (issue
// 13; core/source-policy's doc) says what the answer must be and what the store must hold; the store's tables are
// read raw and compared, and a client key must never have merged, re-addressed or opted in an identified customer.
// Small per-key and per-IP limits with an hour's window make 429s start at the call the model names, with no timing.
// The seed is printed; FUZZ_SEED replays a failure.
import { newApiKey, type KeyKind } from '../../core/api-keys';
import { KEYS_REFRESH_MS, KeyRing } from '../../server/auth';
import { noDispatch } from '../../server/dispatcher';
import { limiter } from '../../server/rate-limits';
import type { KyselyStore } from '../../store/kysely-store';
import { TEST_ADMIN_KEY, basicAuth } from '../support/http';
import { openIdentityTables, type IdentitySnapshot, type IdentityTables, type ProfileRow } from '../support/identity-tables';
import { runSeed } from '../support/run-seed';
import { seededRandom } from '../support/seeded-random';
import { serveApp, type RunningApp } from '../support/serve-app';
import { storeBackends } from '../support/store-backends';

const SUITE = 'test/server/fuzz-keys.test.ts';
const seed = runSeed(`fuzz: ${SUITE}`);
const REPLAY = `FUZZ_SEED=${seed} npx jest --runInBand ${SUITE}`;

const WRITE_KEY = 'fuzz-keys-write-key-0123456789abcdef';
/** MICROFLOWS_CLIENT_MAX_SKEW as configured here (its default). */
const SKEW_MS = 3_600_000;
/** An hour: no limiter window ends during a run, so whether a call is refused depends on the calls before it alone. */
const LIMIT_WINDOW_SECONDS = 3600;
/** Calls of the mixed sequence, and of the limits sequence. */
const MIXED_CALLS = 160;
const LIMIT_CALLS = 50;
/** Failures show this many of the calls before the failing one. */
const HISTORY_SHOWN = 8;

// --- the rules, read from the issue and core/source-policy's doc, sharing no code with the server ------------------

/** Events microflows records itself: a userId on one of them says nothing about who the customer is. */
const SYSTEM_EVENTS = ['Email Delivered', 'Email Opened', 'Email Link Clicked', 'Email Bounced', 'Email Marked as Spam', 'Unsubscribed', 'Preferences Updated', 'Segment Entered', 'Segment Exited'];
/** Reserved for microflows and server keys: `Segment …`, `Email …`, `Unsubscribed`, `Preferences Updated`; matched as written. */
const isReserved = (name: string) => name === 'Unsubscribed' || name === 'Preferences Updated' || name.startsWith('Segment ') || name.startsWith('Email ');
const CONSENT_KINDS = ['email_marketing', 'behavioral_tracking'] as const;

type CallType = 'track' | 'identify' | 'page' | 'screen' | 'group' | 'alias';
type SourceKind = 'server' | 'client';

interface Item {
  type: CallType;
  messageId: string;
  userId?: string;
  anonymousId?: string;
  event?: string;
  name?: string;
  previousId?: string;
  groupId?: string;
  properties?: Record<string, unknown>;
  traits?: Record<string, unknown>;
  timestamp?: string;
  /** A device's clock, with the time it sent the call by the same clock: the server places the event by the difference. */
  originalTimestamp?: string;
  sentAt?: string;
}

/** How the generator made an item's email trait: `invalid` ones (a list, a group, CRLF, a display name…) must be a 400. */
interface Made {
  item: Item;
  invalidEmail: boolean;
}

interface Request {
  path: string;
  batch: boolean;
  items: Made[];
  /** The key text, or null for no credential. */
  key: string | null;
  keyLabel: string;
  placement: 'header' | 'body';
  ip: string;
}

interface Expected {
  status: number;
  /** Single calls refused: the field the answer names. */
  field?: string;
  /** Batches: what the answer lists. */
  accepted?: number;
  duplicates?: number;
  rejected?: Array<{ index: number; field: string }>;
}

interface KnownKey {
  kind: KeyKind;
  id: string | null;
  active: boolean;
}

interface ModelEvent {
  /** The id the event was recorded under (userId, else anonymousId); its customer is whoever that id resolves to now. */
  landing: string;
  /** Names a user: a userId, on any event but one microflows records itself. */
  identifying: boolean;
}

type Standing = 'identified' | 'anonymous' | undefined;

function identifying(item: Item): boolean {
  return item.userId !== undefined && !(item.type === 'track' && SYSTEM_EVENTS.includes(item.event!));
}

/** The field a client identify may not set on a customer identified before the call, given their stored profile. */
function profileRefusal(item: Item, stored: ProfileRow | undefined): string | undefined {
  if (item.type !== 'identify' || !item.traits) return undefined;
  if ('email' in item.traits) {
    const value = item.traits.email;
    const set = typeof value === 'string' && value !== '' ? value.toLowerCase() : null;
    if (set !== (stored?.email ?? null)) return 'traits.email';
  }
  const consent = item.traits.consent as Record<string, unknown> | undefined;
  for (const kind of CONSENT_KINDS) {
    if (consent?.[kind] === true && stored?.consent[kind]?.granted !== true) return `traits.consent.${kind}`;
  }
  return undefined;
}

/** What the server must answer and store, call after call, brute force from the rules. */
class Model {
  owner = new Map<string, string>();
  readonly events = new Map<string, ModelEvent>();
  perKey = new Map<string, number>();
  perIp = new Map<string, number>();

  constructor(
    readonly keys: Map<string, KnownKey>,
    public limits: { perKey: number; perIp: number },
  ) {}

  resolve(id: string): string {
    return this.owner.get(id) ?? id;
  }

  customerOf(messageId: string): string {
    return this.resolve(this.events.get(messageId)!.landing);
  }

  /** Identified: one of their events names a user, or ids were merged into them. Anonymous: events, none of which does. */
  standing(customer: string): Standing {
    if ([...this.owner.values()].includes(customer)) return 'identified';
    let known = false;
    for (const event of this.events.values()) {
      if (this.resolve(event.landing) !== customer) continue;
      if (event.identifying) return 'identified';
      known = true;
    }
    return known ? 'anonymous' : undefined;
  }

  resetLimits(limits: { perKey: number; perIp: number }): void {
    this.limits = limits;
    this.perKey = new Map();
    this.perIp = new Map();
  }

  /** Whether `points` more fit under `limit` for `key`: every request counts, refused or not (a fixed window). */
  private take(counts: Map<string, number>, key: string, points: number, limit: number): boolean {
    const used = (counts.get(key) ?? 0) + points;
    counts.set(key, used);
    return used <= limit;
  }

  /** A client key's call that ingest refuses before the store: a reserved name, or a time beyond the skew. */
  private clientRefusal(item: Item, now: number): string | undefined {
    if (item.type === 'track' && isReserved(item.event!)) return 'event';
    // Segment's rule: a device clock counts by its distance to the device's sentAt, never later than arrival.
    const at =
      item.timestamp !== undefined ? Date.parse(item.timestamp) : item.originalTimestamp !== undefined ? Math.min(now, now - (Date.parse(item.sentAt!) - Date.parse(item.originalTimestamp))) : now;
    if (Math.abs(at - now) > SKEW_MS) return 'timestamp';
    return undefined;
  }

  /** The joins a batch makes, in order; a client item that would join an identified customer away is refused. */
  private plan(items: Item[], fresh: number[], refused: Map<number, string>, client: boolean) {
    const owner = new Map(this.owner);
    const resolve = (id: string) => owner.get(id) ?? id;
    const identified = new Set<string>();
    const seen = new Set<string>();
    const join = (from: string, into: string) => {
      for (const [alias, o] of owner) if (o === from) owner.set(alias, into);
      owner.set(from, into);
      if (identified.has(from)) identified.add(into);
    };
    for (const j of fresh) {
      if (refused.has(j)) continue;
      const item = items[j]!;
      let pair: [string, string] | undefined;
      if (item.type === 'alias') pair = [resolve(item.previousId!), resolve(item.userId!)];
      else if (item.userId !== undefined && item.anonymousId !== undefined && !owner.has(item.anonymousId)) pair = [resolve(item.anonymousId), resolve(item.userId)];
      if (pair && pair[0] !== pair[1]) {
        const [from, into] = pair;
        if (!client) join(from, into);
        else {
          const standing = identified.has(from) ? 'identified' : (this.standing(from) ?? (seen.has(from) ? 'anonymous' : undefined));
          if (standing === 'identified') {
            refused.set(j, item.type === 'alias' ? 'previousId' : 'anonymousId');
            continue;
          }
          // Nobody's id yet: a client cannot claim it, so it joins nothing.
          if (standing === 'anonymous') join(from, into);
        }
      }
      seen.add(resolve(item.userId ?? item.anonymousId!));
      if (identifying(item)) identified.add(resolve(item.userId!));
    }
    return { owner, resolve };
  }

  /** The store's part: which items it refuses (position → field) and how many were duplicates; commits the rest. */
  private record(items: Item[], origin: SourceKind, before: IdentitySnapshot): { refused: Map<number, string>; duplicates: number } {
    const client = origin === 'client';
    const fresh: number[] = [];
    let duplicates = 0;
    items.forEach((item, j) => {
      if (this.events.has(item.messageId)) duplicates += 1;
      else fresh.push(j);
    });
    const refused = new Map<number, string>();
    let plan = this.plan(items, fresh, refused, client);
    // Email and consent are judged on the customer each identify lands on once the batch's joins are made, against who
    // was identified before the call; a refusal can undo a join another check relied on, so plan again until none.
    for (let grew = client; grew; ) {
      const size = refused.size;
      for (const j of fresh) {
        const item = items[j]!;
        if (refused.has(j)) continue;
        const customer = plan.resolve(item.userId ?? item.anonymousId!);
        if (this.standing(customer) !== 'identified') continue;
        const field = profileRefusal(item, before.profiles.get(customer));
        if (field) refused.set(j, field);
      }
      grew = refused.size > size;
      if (grew) plan = this.plan(items, fresh, refused, client);
    }
    this.owner = plan.owner;
    for (const j of fresh) {
      if (refused.has(j)) continue;
      const item = items[j]!;
      this.events.set(item.messageId, { landing: item.userId ?? item.anonymousId!, identifying: identifying(item) });
    }
    return { refused, duplicates };
  }

  /** The answer `request` must get at `now`, with the store as `before`; the model moves on as the server must. */
  call(request: Request, now: number, before: IdentitySnapshot): Expected {
    const known = request.key === null ? undefined : this.keys.get(request.key);
    if (!known || !known.active || known.kind === 'admin') return { status: 401 };
    const kind = known.kind;
    const items = request.items;
    const points = request.batch ? Math.max(1, items.filter((m) => !m.invalidEmail).length) : 1;
    if (kind === 'client' && !this.take(this.perIp, request.ip, 1, this.limits.perIp)) return { status: 429 };
    if (!this.take(this.perKey, request.key!, points, this.limits.perKey)) return { status: 429 };

    if (!request.batch) {
      const { item, invalidEmail } = items[0]!;
      if (invalidEmail) return { status: 400, field: 'traits.email' };
      const early = kind === 'client' ? this.clientRefusal(item, now) : undefined;
      if (early) return { status: 403, field: early };
      const { refused } = this.record([item], kind, before);
      const field = refused.get(0);
      return field ? { status: 403, field } : { status: 200 };
    }

    const rejected: Array<{ index: number; field: string }> = [];
    const forbidden = new Set<number>();
    const kept: number[] = [];
    items.forEach(({ item, invalidEmail }, index) => {
      const early = invalidEmail ? undefined : kind === 'client' ? this.clientRefusal(item, now) : undefined;
      if (invalidEmail) rejected.push({ index, field: `batch[${index}].traits.email` });
      else if (early) {
        rejected.push({ index, field: `batch[${index}].${early}` });
        forbidden.add(index);
      } else kept.push(index);
    });
    const answer = (accepted: number, duplicates: number): Expected => {
      rejected.sort((a, b) => a.index - b.index);
      if (accepted > 0) return { status: 200, accepted, duplicates, rejected };
      return { status: rejected.every((r) => forbidden.has(r.index)) ? 403 : 400, rejected };
    };
    if (kept.length === 0) return answer(0, 0);
    const { refused, duplicates } = this.record(
      kept.map((i) => items[i]!.item),
      kind,
      before,
    );
    for (const [j, field] of refused) {
      rejected.push({ index: kept[j]!, field: `batch[${kept[j]}].${field}` });
      forbidden.add(kept[j]!);
    }
    return answer(kept.length - refused.size, duplicates);
  }
}

// --- generating calls ---------------------------------------------------------------------------------------------

const USERS = ['u0', 'u1', 'u2', 'u3', 'u4'];
const ANONS = ['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6'];
const EVENT_NAMES = [
  'Product Viewed',
  'Order Completed',
  'Signed Up',
  'Emailed A Friend',
  'email opened',
  'Segmentation Run',
  'unsubscribed',
  'Segment Entered',
  'Segment Exited',
  'Segment Anything',
  'Email Opened',
  'Email Link Clicked',
  'Email Bounced',
  'Email Anything',
  'Unsubscribed',
];
const PAGE_NAMES = ['Home', 'Product Detail', 'Email Opened', 'Segment Entered'];
const VALID_EMAILS = ['ada@example.com', 'Ada@Example.COM', 'bob@example.org', 'eve@attacker.example'];
const INVALID_EMAILS = [
  'victim@example.com, second@example.org',
  'victim@example.com; second@example.org',
  'friends: victim@example.com, second@example.org;',
  'victim@example.com\r\nBcc: second@example.org',
  'victim@example.com\n',
  'Ana <ana@example.com>',
  'ana@example.com (Ana)',
  ' ada@example.com',
  'not-an-address',
  'ada@localhost',
];
const IPS = ['198.51.100.7', '198.51.100.8', '203.0.113.9'];
const PATHS: Record<CallType, string> = { track: '/v1/track', identify: '/v1/identify', page: '/v1/page', screen: '/v1/screen', group: '/v1/group', alias: '/v1/alias' };

interface Generator {
  request(now: number): Request;
  /** A call of only what a valid key may always send (tracks and pages of anonymous visitors, now), to run into the limits. */
  plainRequest(): Request;
}

function generator(random: () => number, keys: Map<string, KnownKey>, runTag: string): Generator {
  let sequence = 0;
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const chance = (p: number) => random() < p;
  const sent: Request[] = [];

  /** No time (now), or one within the skew, exactly at it, 1 ms beyond, or days beyond; in the past or the future. */
  const timing = (now: number): Pick<Item, 'timestamp' | 'originalTimestamp' | 'sentAt'> => {
    const r = random();
    const sign = chance(0.5) ? 1 : -1;
    if (r < 0.4) return {};
    const offset =
      r < 0.65 ? Math.floor(random() * SKEW_MS) : r < 0.72 ? SKEW_MS : r < 0.8 ? SKEW_MS + 1 : SKEW_MS + Math.floor(random() * 40 * 86_400_000);
    if (chance(0.8)) return { timestamp: new Date(now + sign * offset).toISOString() };
    // The same distance on a device whose clock is off by up to a day.
    const device = now + Math.floor((random() - 0.5) * 86_400_000);
    return { originalTimestamp: new Date(device + sign * offset).toISOString(), sentAt: new Date(device).toISOString() };
  };

  const traits = (): { traits: Record<string, unknown>; invalidEmail: boolean } => {
    const out: Record<string, unknown> = { plan: pick(['guest', 'member']) };
    let invalidEmail = false;
    const r = random();
    if (r < 0.35) out.email = pick(VALID_EMAILS);
    else if (r < 0.55) {
      out.email = pick(INVALID_EMAILS);
      invalidEmail = true;
    } else if (r < 0.65) out.email = pick([null, '']);
    if (chance(0.35)) {
      const consent: Record<string, boolean> = {};
      // behavioral_tracking is only granted here: a refusal drops and deletes behavioral events (core/tracking-consent),
      // which this model does not follow; test/integration/tracking-consent.test.ts does.
      for (const kind of CONSENT_KINDS) if (chance(0.6)) consent[kind] = chance(0.6) || kind === 'behavioral_tracking';
      out.consent = consent;
    }
    return { traits: out, invalidEmail };
  };

  const item = (type: CallType, now: number): Made => {
    const made: Item = { type, messageId: `${runTag}-m${++sequence}` };
    let invalidEmail = false;
    if (type === 'alias') {
      made.userId = pick(chance(0.8) ? USERS : ANONS);
      made.previousId = pick(chance(0.5) ? USERS : ANONS);
    } else {
      if (chance(0.6)) made.userId = pick(USERS);
      // Sometimes another customer's userId as the anonymousId: the takeover attempt.
      if (made.userId === undefined || chance(0.7)) made.anonymousId = pick(chance(0.25) ? USERS : ANONS);
    }
    if (type === 'track') {
      made.event = pick(EVENT_NAMES);
      made.properties = { source: 'fuzz' };
    } else if (type === 'page' || type === 'screen') {
      if (chance(0.8)) made.name = pick(PAGE_NAMES);
    } else if (type === 'group') made.groupId = 'g1';
    else if (type === 'identify') {
      const t = traits();
      made.traits = t.traits;
      invalidEmail = t.invalidEmail;
    }
    return { item: { ...made, ...timing(now) }, invalidEmail };
  };

  const credential = (): { key: string | null; keyLabel: string } => {
    const of = (kind: KeyKind, active: boolean) => [...keys].filter(([, k]) => k.kind === kind && k.active === active && k.id !== null).map(([text]) => text);
    // A quarter of the calls carry no valid source key.
    const r = random() * 20;
    if (r < 3) return { key: WRITE_KEY, keyLabel: 'the write key' };
    if (r < 6) return { key: pick(of('server', true)), keyLabel: 'a stored server key' };
    if (r < 15) return { key: pick(of('client', true)), keyLabel: 'a stored client key' };
    const revoked = [...of('client', false), ...of('server', false)];
    if (r < 16 && revoked.length > 0) return { key: pick(revoked), keyLabel: 'a revoked key' };
    if (r < 17) return { key: `mf_client_unknown${Math.floor(random() * 1e9)}`, keyLabel: 'an unknown key' };
    if (r < 18.5) return chance(0.5) ? { key: TEST_ADMIN_KEY, keyLabel: 'the admin key' } : { key: pick(of('admin', true)), keyLabel: 'a stored admin key' };
    return { key: null, keyLabel: 'no key' };
  };

  const withCredential = (parts: Pick<Request, 'path' | 'batch' | 'items'>): Request => {
    const request: Request = { ...parts, ...credential(), placement: chance(0.8) ? 'header' : 'body', ip: pick(IPS) };
    sent.push(request);
    return request;
  };

  const TYPES: Array<[CallType, number]> = [
    ['track', 30],
    ['identify', 30],
    ['page', 10],
    ['screen', 4],
    ['group', 4],
    ['alias', 12],
  ];
  const anyType = (): CallType => {
    let r = random() * TYPES.reduce((sum, [, w]) => sum + w, 0);
    for (const [type, weight] of TYPES) if ((r -= weight) < 0) return type;
    return 'track';
  };

  return {
    request(now) {
      const singles = sent.filter((s) => !s.batch);
      // A retry: an earlier call, as it was (same messageId and time), perhaps with another key.
      if (chance(0.06) && singles.length > 0) {
        const earlier = pick(singles);
        return withCredential({ path: earlier.path, batch: false, items: earlier.items });
      }
      if (chance(0.2)) {
        const items = Array.from({ length: 1 + Math.floor(random() * 4) }, () => item(anyType(), now));
        return withCredential({ path: '/v1/batch', batch: true, items });
      }
      const type = anyType();
      return withCredential({ path: PATHS[type], batch: false, items: [item(type, now)] });
    },
    plainRequest() {
      const clients = [...keys].filter(([, k]) => k.kind !== 'admin' && k.active).map(([text]) => text);
      const batch = chance(0.4);
      const items = Array.from({ length: batch ? 1 + Math.floor(random() * 5) : 1 }, (): Made => {
        const type = chance(0.5) ? 'track' : 'page';
        return { item: { type, messageId: `${runTag}-m${++sequence}`, anonymousId: `visitor-${Math.floor(random() * 3)}`, ...(type === 'track' ? { event: 'Product Viewed' } : {}) }, invalidEmail: false };
      });
      const key = pick(clients);
      return { path: batch ? '/v1/batch' : PATHS[items[0]!.item.type], batch, items, key, keyLabel: keys.get(key)!.kind === 'client' ? 'a client key' : 'a server key', placement: 'header', ip: pick(IPS) };
    },
  };
}

// --- sending and checking ----------------------------------------------------------------------------------------

interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown> | undefined;
  text: string;
}

async function send(base: string, request: Request): Promise<Reply> {
  const inBody = request.placement === 'body' && request.key !== null ? { writeKey: request.key } : {};
  const body = request.batch ? { batch: request.items.map((m) => m.item), ...inBody } : { ...request.items[0]!.item, ...inBody };
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-forwarded-for': request.ip };
  if (request.placement === 'header' && request.key !== null) headers.authorization = basicAuth(request.key);
  const res = await fetch(`${base}${request.path}`, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let parsed: Record<string, unknown> | undefined;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

function describeRequest(request: Request): string {
  const items = request.items.map((m) => JSON.stringify(m.item)).join(', ');
  return `POST ${request.path} with ${request.keyLabel}${request.key !== null ? ` in the ${request.placement}` : ''} from ${request.ip}: ${request.batch ? `[${items}]` : items}`;
}

/** What is wrong with the answer, against the model's expectation; empty when it is right. */
function answerProblems(expected: Expected, reply: Reply): string[] {
  const problems: string[] = [];
  const shown = reply.text.length > 400 ? `${reply.text.slice(0, 400)}…` : reply.text;
  if (reply.status !== expected.status) return [`expected ${expected.status}${expected.field ? ` naming ${expected.field}` : ''}, got ${reply.status} ${shown}`];
  const body = reply.body ?? {};
  if (expected.status !== 200) {
    if (typeof body.error !== 'string' || typeof body.message !== 'string' || body.message === '') problems.push(`a ${expected.status} without { error, message }: ${shown}`);
    if (expected.status === 401 && !reply.headers.get('www-authenticate')) problems.push('a 401 without WWW-Authenticate');
    if (expected.status === 429 && !/^\d+$/.test(reply.headers.get('retry-after') ?? '')) problems.push(`a 429 without Retry-After: ${shown}`);
  }
  if (expected.field !== undefined && body.field !== expected.field) problems.push(`expected the answer to name ${expected.field}, got ${JSON.stringify(body.field)}: ${shown}`);
  if (expected.rejected) {
    const got = Array.isArray(body.rejected) ? (body.rejected as Array<{ index: unknown; field: unknown }>).map((r) => ({ index: r.index, field: r.field })) : body.rejected;
    if (JSON.stringify(got) !== JSON.stringify(expected.rejected)) problems.push(`expected rejected ${JSON.stringify(expected.rejected)}, got ${JSON.stringify(got)}`);
  }
  if (expected.accepted !== undefined && (body.accepted !== expected.accepted || body.duplicates !== expected.duplicates)) {
    problems.push(`expected accepted ${expected.accepted} and duplicates ${expected.duplicates}, got ${JSON.stringify({ accepted: body.accepted, duplicates: body.duplicates })}`);
  }
  return problems;
}

const sortedEntries = (map: Map<string, unknown>) => JSON.stringify([...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** What the tables hold that the model says they must not (or lack), and what a refused or client call changed that it must not. */
function storeProblems(model: Model, request: Request, expected: Expected, before: IdentitySnapshot, after: IdentitySnapshot, identifiedBefore: Set<string>): string[] {
  const problems: string[] = [];
  if (expected.status !== 200) {
    for (const table of ['events', 'identities', 'profiles'] as const) {
      const changed = table === 'profiles' ? sortedEntries(new Map([...before.profiles].map(([k, v]) => [k, v.raw]))) !== sortedEntries(new Map([...after.profiles].map(([k, v]) => [k, v.raw]))) : sortedEntries(before[table]) !== sortedEntries(after[table]);
      if (changed) problems.push(`a refused call (${expected.status}) changed the ${table} table`);
    }
  }
  const expectedEvents = new Map([...model.events.keys()].map((id) => [id, model.customerOf(id)]));
  if (sortedEntries(expectedEvents) !== sortedEntries(after.events)) {
    const missing = [...expectedEvents].filter(([id, c]) => after.events.get(id) !== c).map(([id, c]) => `${id} on ${c} (stored: ${after.events.get(id) ?? 'absent'})`);
    const extra = [...after.events].filter(([id]) => !expectedEvents.has(id)).map(([id, c]) => `${id} on ${c}`);
    problems.push(`events: expected ${missing.join(', ') || 'nothing else'}; not expected: ${extra.join(', ') || 'none'}`);
  }
  if (sortedEntries(model.owner) !== sortedEntries(after.identities)) problems.push(`identities: expected ${sortedEntries(model.owner)}, stored ${sortedEntries(after.identities)}`);
  const customers = [...new Set(after.events.values())].sort();
  const profiled = [...after.profiles.keys()].sort();
  if (JSON.stringify(customers) !== JSON.stringify(profiled)) problems.push(`profiles: customers with events ${JSON.stringify(customers)}, profile rows ${JSON.stringify(profiled)}`);

  // Whatever the model predicted: a client key never merges, re-addresses or opts in a customer identified before.
  if (model.keys.get(request.key ?? '')?.kind === 'client') {
    for (const customer of identifiedBefore) {
      const owner = after.identities.get(customer);
      if (owner !== undefined) problems.push(`a client key merged ${customer}, identified before the call, into ${owner}`);
      const was = before.profiles.get(customer);
      const now = after.profiles.get(customer);
      if (!was || !now) continue;
      if (now.email !== was.email) problems.push(`a client key changed the email of ${customer}, identified before the call, from ${was.email} to ${now.email}`);
      for (const kind of CONSENT_KINDS) {
        if (now.consent[kind]?.granted === true && was.consent[kind]?.granted !== true) problems.push(`a client key granted ${kind} consent for ${customer}, identified before the call`);
      }
    }
  }
  return problems;
}

// --- the suites ----------------------------------------------------------------------------------------------------

for (const backend of storeBackends('fuzz: key kinds and limits')) {
  backend.describe(`fuzzed ingest with every key kind and small limits: ${backend.name}`, () => {
    const random = seededRandom(seed ^ (backend.name === 'sqlite' ? 0 : 0x5bd1e995));
    let store: KyselyStore;
    let tables: IdentityTables;
    let app: RunningApp | undefined;
    let keyClock = 1_000_000;
    let now = Date.UTC(2026, 0, 5, 12);
    const keys = new Map<string, KnownKey>([
      [WRITE_KEY, { kind: 'server', id: null, active: true }],
      [TEST_ADMIN_KEY, { kind: 'admin', id: null, active: true }],
    ]);
    let model: Model;
    const history: string[] = [];
    const tally = new Map<string, number>();
    /** Set once a call went otherwise than the model said: the model no longer knows what the store holds. */
    let diverged = false;

    const createKey = async (kind: KeyKind) => {
      const { key, record } = newApiKey(kind, `fuzz ${kind}`, kind === 'admin' ? ['read'] : [], keyClock);
      await store.createApiKey(record);
      keys.set(key, { kind, id: record.id, active: true });
      return key;
    };
    const revokeKey = async (text: string) => {
      const known = keys.get(text)!;
      await store.revokeApiKey(known.id!, keyClock);
      known.active = false;
    };

    const serve = async (limits: { perKey: number; perIp: number }) => {
      await app?.close();
      model.resetLimits(limits);
      app = await serveApp({
        store,
        config: { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY, clientMaxSkewMs: SKEW_MS, trustProxy: 'loopback' },
        // The store's keys on a clock the test moves: a revoked or created key takes effect at the call the model says.
        keys: new KeyRing(store, { writeKey: WRITE_KEY, adminKey: TEST_ADMIN_KEY }, () => keyClock),
        ingestLimits: { perKey: limiter(limits.perKey, LIMIT_WINDOW_SECONDS), perIp: limiter(limits.perIp, LIMIT_WINDOW_SECONDS) },
        dispatcher: noDispatch,
        now: () => now,
        log: (m) => history.push(`server log: ${m}`),
      });
    };

    /** One call: the model's expectation, the server's answer, the tables after; throws with the replay line on any difference. */
    const step = async (n: number, request: Request) => {
      const before = await tables.snapshot();
      const identifiedBefore = new Set([...new Set([...before.events.values(), ...before.identities.values()])].filter((c) => model.standing(c) === 'identified'));
      const expected = model.call(request, now, before);
      const reply = await send(app!.url, request);
      const after = await tables.snapshot();
      history.push(`#${n} ${describeRequest(request)} → ${reply.status}`);
      tally.set(`${reply.status}`, (tally.get(`${reply.status}`) ?? 0) + 1);
      const problems = [...answerProblems(expected, reply), ...storeProblems(model, request, expected, before, after, identifiedBefore)];
      if (problems.length > 0) {
        diverged = true;
        throw new Error(
          `replay: ${REPLAY}\n${backend.name}, call #${n}: ${describeRequest(request)}\n  ${problems.join('\n  ')}\n` +
            `the calls before it:\n  ${history.slice(-HISTORY_SHOWN - 1, -1).join('\n  ')}`,
        );
      }
      now += 1000;
    };

    beforeAll(async () => {
      store = await backend.open();
      tables = openIdentityTables(backend);
      await createKey('server');
      await createKey('client');
      await createKey('client');
      await createKey('admin');
      // Revoked before the server first reads the keys: refused from the first call.
      await revokeKey(await createKey('client'));
      await revokeKey(await createKey('server'));
      model = new Model(keys, { perKey: 1, perIp: 1 });
    });

    afterAll(async () => {
      await app?.close();
      await tables?.close();
      await backend.dispose();
    });

    it(`answers ${MIXED_CALLS} random calls with random credentials as the rules say, and stores exactly what they allow`, async () => {
      const limits = { perKey: 20 + Math.floor(random() * 60), perIp: 10 + Math.floor(random() * 30) };
      await serve(limits);
      const calls = generator(random, keys, 'mixed');
      // Every answer below must come up: a rarely drawn one (a 400 is about one call in twenty) that the first
      // MIXED_CALLS missed is waited for, up to three times as many calls, rather than failing the run by chance.
      const covered = () => ['200', '400', '401', '403'].every((status) => (tally.get(status) ?? 0) > 0);
      for (let n = 1; n <= MIXED_CALLS || (!covered() && n <= 3 * MIXED_CALLS); n++) {
        // Now and then a key is revoked or created; the cached keys reload once their refresh time has passed.
        const action = random();
        if (action < 0.03) {
          const stored = [...keys].filter(([, k]) => k.id !== null && k.active && k.kind !== 'admin');
          const [text, known] = stored[Math.floor(random() * stored.length)]!;
          // One stored key of each kind stays, for the calls that pick one.
          if (stored.some(([other, k]) => other !== text && k.kind === known.kind)) {
            await revokeKey(text);
            history.push(`revoked ${keys.get(text)!.kind} key ${keys.get(text)!.id}`);
            keyClock += KEYS_REFRESH_MS;
          }
        } else if (action < 0.06) {
          const kind = random() < 0.7 ? 'client' : 'server';
          await createKey(kind);
          history.push(`created a ${kind} key`);
          keyClock += KEYS_REFRESH_MS;
        }
        await step(n, calls.request(now));
      }
      process.stdout.write(`fuzz keys ${backend.name}: limits ${limits.perKey}/key, ${limits.perIp}/IP; answers ${JSON.stringify(Object.fromEntries(tally))}\n`);
      // A run that never reached these would test little: within three times the calls, each is all but certain.
      for (const status of ['200', '400', '401', '403']) expect(`${status}: ${(tally.get(status) ?? 0) > 0 ? 'seen' : 'never'}`).toBe(`${status}: seen`);
    });

    it(`starts refusing (429) at the exact call each small limit is passed, and a 429 stores nothing`, async () => {
      if (diverged) throw new Error('not run: the sequence above failed, so the model no longer knows what the store holds (fix that one first)');
      const limits = { perKey: 4 + Math.floor(random() * 8), perIp: 3 + Math.floor(random() * 6) };
      await serve(limits);
      tally.clear();
      const calls = generator(random, keys, 'limits');
      for (let n = 1; n <= LIMIT_CALLS; n++) await step(n, calls.plainRequest());
      process.stdout.write(`fuzz keys ${backend.name}, limits ${limits.perKey}/key and ${limits.perIp}/IP: answers ${JSON.stringify(Object.fromEntries(tally))}\n`);
      expect({ limited: (tally.get('429') ?? 0) > 0, accepted: (tally.get('200') ?? 0) > 0 }).toEqual({ limited: true, accepted: true });
    });
  });
}
