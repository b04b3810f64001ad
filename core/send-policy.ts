// The send policy (flows/policy.yaml): how much and when a customer is mailed — frequency caps, what a capped send
// does, quiet hours and the default time zone — read and validated like flow files (file:line:col, path, fix), and
// the pure cap decision the send step asks before it mails. Pure: no I/O, `now` is passed in.
//
//   caps:                         # each: at most `max` emails per `per`; every cap that matches a send must have room
//     - { name: marketing-daily, group: marketing, max: 1, per: 24h }
//     - { name: marketing-weekly, group: marketing, max: 3, per: 7d }
//     - { name: total, max: 5, per: 7d }                        # no group/topic: all marketing email
//     - { name: reminders, topic: cart-reminders, max: 2, per: 7d }
//     - { name: receipts, transactional: true, max: 10, per: 24h }  # transactional email is exempt unless a cap
//                                                                   # says `transactional: true`
//   on_cap: defer                 # defer | skip: what a capped send does (flows may override it); default defer
//   defer: { max: 48h }           # a send deferred longer than this is skipped instead; default 48h
//   quiet_hours: { from: "21:00", to: "08:00" }   # customer's local time; may cross midnight; default none
//   default_timezone: America/New_York            # last fallback for the customer's zone; default UTC
//   events: [Subscription Renewed, Ticket Closed] # events your sources send, so `check` knows wait_for can get them
//
// A cap matches a send when the categories agree (`transactional: true` caps count only transactional email, the
// others only marketing email) and, when written, the flow group and the flow topic agree. Windows slide: a send at
// t counts against a cap at `now` while now - t < per.
import { InvalidFileError, type FileProblem } from './errors';
import type { TemplateCategory } from './suppression';
import { isValidTimeZone } from './time-of-day';
import { readYaml, type Entry, type YamlReader } from './yaml-reader';
import { isScalar, isSeq } from 'yaml';

/** The file name inside the flows directory; flow loaders must not read it as a flow. */
export const SEND_POLICY_FILE = 'policy.yaml';

export interface FrequencyCap {
  name: string;
  /** Only sends of flows in this group; null: any group. */
  group: string | null;
  /** Only sends of flows with this topic; null: any topic (or none). */
  topic: string | null;
  /** true: counts transactional email only; false: marketing email only. */
  transactional: boolean;
  max: number;
  perMs: number;
}

export type OnCap = 'defer' | 'skip';

export interface TimeOfDay {
  hour: number;
  minute: number;
}

/** Local wall-clock window in which nothing is sent; from > to means it crosses midnight. from never equals to. */
export interface QuietHours {
  from: TimeOfDay;
  to: TimeOfDay;
}

export interface SendPolicy {
  caps: FrequencyCap[];
  onCap: OnCap;
  deferMaxMs: number;
  quietHours: QuietHours | null;
  defaultTimezone: string;
  /** Event names the project's sources are declared to send (`events:`); absent when the file lists none. */
  events?: string[];
}

const HOUR = 3_600_000;

/** The policy when there is no policy file: no caps, no quiet hours; nothing changes for existing installs. */
export const DEFAULT_SEND_POLICY: SendPolicy = Object.freeze({
  caps: [],
  onCap: 'defer',
  deferMaxMs: 48 * HOUR,
  quietHours: null,
  defaultTimezone: 'UTC',
}) as SendPolicy;

const TOP_KEYS = ['caps', 'on_cap', 'defer', 'quiet_hours', 'default_timezone', 'events'] as const;
const CAP_KEYS = ['name', 'group', 'topic', 'transactional', 'max', 'per'] as const;
const DEFER_KEYS = ['max'] as const;
const QUIET_KEYS = ['from', 'to'] as const;
const ON_CAP_VALUES: readonly OnCap[] = ['defer', 'skip'];
const KEBAB = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const CLOCK = /^([01]\d|2[0-3]):([0-5]\d)$/;

// --- reading the file --------------------------------------------------------------------------------------------

/** Reads a policy file; `policy` is null when there are errors (warnings do not block). Problems in file order. */
export function parseSendPolicy(source: string, file: string): { policy: SendPolicy | null; problems: FileProblem[] } {
  const { reader: r, contents, parsed } = readYaml(source, file);
  if (!parsed) return { policy: null, problems: r.sortedProblems() };
  const root = r.resolve(contents);
  // An empty file is a valid "no policy": the same as having none, which is easier to explain than an error.
  if (r.isEmpty(root)) return { policy: { ...DEFAULT_SEND_POLICY, caps: [] }, problems: r.sortedProblems() };
  const top = r.map(root, '', SEND_POLICY_FILE, TOP_KEYS);
  if (!top) return { policy: null, problems: r.sortedProblems() };

  const caps = top.has('caps') ? readCaps(r, top.get('caps')!) : [];
  const onCap = top.has('on_cap') ? readOnCap(r, top.get('on_cap')) : DEFAULT_SEND_POLICY.onCap;
  const deferMaxMs = top.has('defer') ? readDefer(r, top.get('defer')!) : DEFAULT_SEND_POLICY.deferMaxMs;
  const quietHours = top.has('quiet_hours') ? readQuietHours(r, top.get('quiet_hours')) : null;
  const defaultTimezone = top.has('default_timezone') ? readTimeZone(r, top.get('default_timezone')) : DEFAULT_SEND_POLICY.defaultTimezone;
  const events = top.has('events') ? readEvents(r, top.get('events')!) : null;

  const problems = r.sortedProblems();
  if (problems.some((p) => p.severity === 'error') || !caps || !onCap || deferMaxMs === undefined || quietHours === undefined || !defaultTimezone || events === undefined) {
    return { policy: null, problems };
  }
  return { policy: { caps, onCap, deferMaxMs, quietHours, defaultTimezone, ...(events ? { events } : {}) }, problems };
}

/** Reads a policy file; throws InvalidFileError listing every error found. */
export function compileSendPolicy(source: string, file: string): SendPolicy {
  const { policy, problems } = parseSendPolicy(source, file);
  if (!policy) throw new InvalidFileError(problems);
  return policy;
}

function readCaps(r: YamlReader, entry: Entry): FrequencyCap[] | undefined {
  const list = entry.value;
  if (r.isEmpty(list)) return [];
  if (!isSeq(list)) {
    r.error(list ?? entry.keySpot, 'caps', 'caps must be a list of caps, e.g. - { name: marketing-daily, group: marketing, max: 1, per: 24h }');
    return undefined;
  }
  const caps: FrequencyCap[] = [];
  const seen = new Map<string, number>();
  let ok = true;
  list.items.forEach((raw, i) => {
    const path = `caps[${i}]`;
    const node = r.resolve(raw);
    const entries = r.map(node, path, 'a cap', CAP_KEYS, list);
    if (!entries) {
      ok = false;
      return;
    }
    const name = r.text(r.require(entries, 'name', node, path, 'the cap name shown in decision logs, e.g. "name: marketing-daily"'), 'name');
    if (name !== undefined) {
      const first = seen.get(name);
      if (first !== undefined) {
        r.error(entries.get('name')!.value, `${path}.name`, `duplicate cap name "${name}" (first used by caps[${first}]): give each cap its own name, the decision log reports caps by name`);
        ok = false;
      } else seen.set(name, i);
    }
    const group = entries.has('group') ? r.text(entries.get('group'), 'group') : null;
    const topic = entries.has('topic') ? readTopic(r, entries.get('topic')!) : null;
    const transactional = entries.has('transactional') ? readBoolean(r, entries.get('transactional')!, 'transactional') : false;
    const max = r.integer(r.require(entries, 'max', node, path, 'how many emails the window allows, e.g. "max: 1"'), 'max', 1);
    const perMs = r.duration(r.require(entries, 'per', node, path, 'the window length, e.g. "per: 24h" or "per: 7d"'), 'per');
    if (name === undefined || group === undefined || topic === undefined || transactional === undefined || max === undefined || perMs === undefined) {
      ok = false;
      return;
    }
    caps.push({ name, group, topic, transactional, max, perMs });
  });
  return ok ? caps : undefined;
}

/** `events: [Name, ...]`: the event names sources send; an empty list is the same as none. */
function readEvents(r: YamlReader, entry: Entry): string[] | null | undefined {
  if (r.isEmpty(entry.value)) return null;
  const names = r.textList(entry, 'events');
  if (!names) return undefined;
  return [...new Set(names.map((name) => name.trim()))];
}

function readTopic(r: YamlReader, entry: Entry): string | undefined {
  const topic = r.text(entry, 'topic');
  if (topic === undefined) return undefined;
  if (!KEBAB.test(topic)) {
    r.error(entry.value, entry.path, `topic "${topic}" must be kebab-case like the flow topics it matches, e.g. cart-reminders`);
    return undefined;
  }
  return topic;
}

function readBoolean(r: YamlReader, entry: Entry, what: string): boolean | undefined {
  const v = entry.value;
  if (isScalar(v) && typeof v.value === 'boolean') return v.value;
  r.error(v ?? entry.keySpot, entry.path, `${what} must be true or false, got ${JSON.stringify(r.js(v))}`);
  return undefined;
}

/** `on_cap: defer | skip`; exported so flow files can read their override the same way. */
export function readOnCap(r: YamlReader, entry: Entry | undefined): OnCap | undefined {
  const text = r.text(entry, 'on_cap');
  if (text === undefined || !entry) return undefined;
  if ((ON_CAP_VALUES as readonly string[]).includes(text)) return text as OnCap;
  r.error(entry.value, entry.path, `on_cap must be defer (send when the caps allow, within defer.max) or skip (drop the send), got "${text}"`);
  return undefined;
}

function readDefer(r: YamlReader, entry: Entry): number | undefined {
  const entries = r.map(entry.value, entry.path, 'defer', DEFER_KEYS, entry.keySpot);
  if (!entries) return undefined;
  // max is the only key, so a missing one is a typo already reported above, or `defer: {}`: keep the default.
  return entries.has('max') ? r.duration(entries.get('max'), 'defer.max') : DEFAULT_SEND_POLICY.deferMaxMs;
}

/**
 * `quiet_hours: { from: "21:00", to: "08:00" }`; `quiet_hours: off` (or empty) means none and reads as null.
 * Undefined after reporting a problem. Exported so flow files can read their override the same way.
 */
export function readQuietHours(r: YamlReader, entry: Entry | undefined): QuietHours | null | undefined {
  if (!entry) return undefined;
  const v = entry.value;
  if (r.isEmpty(v) || (isScalar(v) && (v.value === false || v.value === 'off'))) return null;
  const entries = r.map(v, entry.path, 'quiet_hours', QUIET_KEYS, entry.keySpot);
  if (!entries) return undefined;
  const from = readClock(r, r.require(entries, 'from', v, entry.path, 'when the quiet window starts, local time, e.g. from: "21:00"'));
  const to = readClock(r, r.require(entries, 'to', v, entry.path, 'when the quiet window ends, local time, e.g. to: "08:00"'));
  if (!from || !to) return undefined;
  if (from.hour === to.hour && from.minute === to.minute) {
    r.error(v, entry.path, `quiet_hours from and to are both ${formatTimeOfDay(from)}: the window would be empty or the whole day; write two different times, or "quiet_hours: off"`);
    return undefined;
  }
  return { from, to };
}

function readClock(r: YamlReader, entry: Entry | undefined): TimeOfDay | undefined {
  if (!entry) return undefined;
  const v = entry.value;
  const raw = isScalar(v) ? v.value : r.js(v);
  const match = typeof raw === 'string' ? CLOCK.exec(raw.trim()) : null;
  if (!match) {
    r.error(v ?? entry.keySpot, entry.path, `${entry.key} must be a 24-hour local time "HH:MM" between "00:00" and "23:59", e.g. "21:00" (quote it), got ${JSON.stringify(raw)}`);
    return undefined;
  }
  return { hour: Number(match[1]), minute: Number(match[2]) };
}

function readTimeZone(r: YamlReader, entry: Entry | undefined): string | undefined {
  const zone = r.text(entry, 'default_timezone');
  if (zone === undefined || !entry) return undefined;
  if (isValidTimeZone(zone)) return zone;
  r.error(entry.value, entry.path, `unknown time zone "${zone}": use an IANA name such as America/New_York, Europe/Paris or UTC`);
  return undefined;
}

export function formatTimeOfDay(t: TimeOfDay): string {
  return `${String(t.hour).padStart(2, '0')}:${String(t.minute).padStart(2, '0')}`;
}

// --- the cap decision --------------------------------------------------------------------------------------------

/** The send the step is about to make. */
export interface CapCandidate {
  flowId: string;
  group: string;
  topic: string | null;
  category: TemplateCategory;
  priority: number;
}

/** A send already made to the same customer (or a slot reserved for one). */
export interface RecentSend {
  at: number;
  group: string;
  topic: string | null;
  category: TemplateCategory;
}

export type CapDecision =
  | { allowed: true }
  | {
      allowed: false;
      /** The cap whose window opens last, i.e. the one that sets nextSlotAt (file order breaks ties). */
      cap: string;
      /** Every cap that is full at `now`, in file order. */
      fullCaps: string[];
      /** The earliest time at which every cap matching the send has room, if nothing else is sent before. */
      nextSlotAt: number;
    };

/** Whether `cap` counts a send of this category, group and topic. */
export function capMatches(cap: FrequencyCap, send: { group: string; topic: string | null; category: TemplateCategory }): boolean {
  if (cap.transactional !== (send.category === 'transactional')) return false;
  if (cap.group !== null && cap.group !== send.group) return false;
  if (cap.topic !== null && cap.topic !== send.topic) return false;
  return true;
}

/** How far back the store must look for recent sends: the longest window (0 with no caps). */
export function capLookbackMs(policy: Pick<SendPolicy, 'caps'>): number {
  return policy.caps.reduce((longest, cap) => Math.max(longest, cap.perMs), 0);
}

/**
 * Whether the caps let `send` go at `now`, given the customer's `recent` sends (any order; older ones than the
 * longest window are ignored). Sends dated after `now` (slots already reserved for later) count too: a cap is a
 * promise about every window, not only the one ending now.
 */
export function evaluateCaps(policy: Pick<SendPolicy, 'caps'>, send: CapCandidate, recent: readonly RecentSend[], now: number): CapDecision {
  const full: Array<{ name: string; opensAt: number }> = [];
  for (const cap of policy.caps) {
    if (!capMatches(cap, send)) continue;
    const counted = recent
      .filter((r) => capMatches(cap, r) && r.at > now - cap.perMs)
      .map((r) => r.at)
      .sort((a, b) => a - b);
    if (counted.length < cap.max) continue;
    // Room appears once all but max - 1 of the counted sends have left the window: the k-th oldest leaves at at + per.
    const mustLeave = counted.length - cap.max + 1;
    full.push({ name: cap.name, opensAt: counted[mustLeave - 1]! + cap.perMs });
  }
  if (full.length === 0) return { allowed: true };
  // A cap's count only falls as time passes (no new sends assumed), so the latest opening satisfies them all.
  const binding = full.reduce((a, b) => (b.opensAt > a.opensAt ? b : a));
  return { allowed: false, cap: binding.name, fullCaps: full.map((f) => f.name), nextSlotAt: binding.opensAt };
}

export type CapOutcome =
  | { action: 'send' }
  | { action: 'defer'; until: number; cap: string }
  | { action: 'skip'; cap: string; reason: 'on_cap_skip' | 'defer_limit' };

/**
 * What a send step does with a cap decision. `dueAt` is when the send was first due (deferrals do not restart the
 * clock, so a send cannot be deferred past defer.max in several hops); `onCap` is the flow's override, else the
 * policy's.
 */
export function capOutcome(
  decision: CapDecision,
  options: { onCap?: OnCap | null; deferMaxMs?: number | null; dueAt: number },
  policy: Pick<SendPolicy, 'onCap' | 'deferMaxMs'>,
): CapOutcome {
  if (decision.allowed) return { action: 'send' };
  const onCap = options.onCap ?? policy.onCap;
  if (onCap === 'skip') return { action: 'skip', cap: decision.cap, reason: 'on_cap_skip' };
  const deferMaxMs = options.deferMaxMs ?? policy.deferMaxMs;
  if (decision.nextSlotAt - options.dueAt > deferMaxMs) return { action: 'skip', cap: decision.cap, reason: 'defer_limit' };
  return { action: 'defer', until: decision.nextSlotAt, cap: decision.cap };
}

/** A send waiting for the caps to allow it. */
export interface WaitingSend {
  id: string;
  priority: number;
  dueAt: number;
}

/**
 * The order in which a customer's deferred sends get a freed slot: higher priority first, then the one due
 * earliest, then id so the order is total and every worker agrees on it.
 */
export function orderWaitingSends<T extends WaitingSend>(waiting: readonly T[]): T[] {
  return [...waiting].sort((a, b) => b.priority - a.priority || a.dueAt - b.dueAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
