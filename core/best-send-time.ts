// Best send time (`send: { at: best_time, within: 24h }`): the local hour at which a customer opens or clicks most,
// and the first moment at that hour within the allowed delay. Pure: `now` and the customer's time zone are passed in;
// zone rules come from Luxon (Intl), never from the machine's own zone.
import { DateTime, IANAZone } from 'luxon';
import { DAY_MS, isMachineOpen } from './behavior';
import type { EventType } from './event';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
/** Every UTC offset in use today is a whole number of quarter hours, so a local hour can only begin on one of these. */
const QUARTER_HOUR_MS = 15 * 60_000;
const HOURS_PER_DAY = 24;

/** The engagement events whose times tell when a customer reads mail (names as core/esp-webhooks and the tracking routes record them). */
export const ENGAGEMENT_SIGNALS: readonly string[] = ['Email Opened', 'Email Link Clicked'];

/** The part of a stored event this module reads (a StoredEvent fits). */
export interface EngagementSample {
  type?: EventType;
  name: string | null;
  properties?: Record<string, unknown>;
  /** epoch ms: when the customer opened or clicked */
  timestamp: number;
}

export interface BestSendTimeOptions {
  /** An engagement this old counts half as much as one now: habits drift (new job, new season). */
  halfLifeMs?: number;
  /** Engagement older than this is not read at all, so the hour does not rest on a habit long gone. */
  lookbackMs?: number;
  /**
   * How many weighted engagements the population prior is worth. The customer's own hour wins once their history at
   * that hour outweighs the prior's lead there, so a single stray open does not move a customer off the crowd's hour.
   */
  priorWeight?: number;
  /** The hour when nobody at all has engaged yet (a new installation). */
  defaultHour?: number;
}

export const BEST_SEND_TIME_DEFAULTS: Required<BestSendTimeOptions> = {
  halfLifeMs: 30 * DAY_MS,
  lookbackMs: 90 * DAY_MS,
  priorWeight: 5,
  defaultHour: 10,
};

/** 24 non-negative weights, index = local hour of day. */
export type HourHistogram = number[];

export interface BestSendHour {
  /** 0..23, local to the customer's time zone */
  hour: number;
  /** For the decision log: which hour and why, with the weights that decided it. */
  reason: string;
}

function options(given: BestSendTimeOptions | undefined): Required<BestSendTimeOptions> {
  const merged = { ...BEST_SEND_TIME_DEFAULTS, ...given };
  if (!(merged.halfLifeMs > 0) || !(merged.lookbackMs > 0) || !(merged.priorWeight >= 0)) {
    throw new RangeError(`best send time: halfLifeMs and lookbackMs must be positive and priorWeight non-negative, got ${JSON.stringify(given)}`);
  }
  checkHour(merged.defaultHour, 'defaultHour');
  return merged;
}

function checkHour(hour: number, what: string): void {
  if (!Number.isInteger(hour) || hour < 0 || hour >= HOURS_PER_DAY) {
    throw new RangeError(`best send time: ${what} must be a whole hour from 0 to 23, got ${hour}`);
  }
}

/** The zone to read local hours in: an unknown name falls back to UTC (as `wait: { until }` does) rather than failing a send. */
function zoneOf(timeZone: string): { zone: string; known: boolean } {
  return IANAZone.isValidZone(timeZone) ? { zone: timeZone, known: true } : { zone: 'UTC', known: false };
}

function localHour(at: number, zone: string): number {
  return DateTime.fromMillis(at, { zone }).hour;
}

/** A person's open or click, as opposed to a delivery, a machine's open or anything else. */
function isHumanEngagement(event: EngagementSample): boolean {
  if (event.type !== undefined && event.type !== 'track') return false;
  if (event.name === null || !ENGAGEMENT_SIGNALS.includes(event.name)) return false;
  return !isMachineOpen({ name: event.name, properties: event.properties ?? {} });
}

/**
 * The customer's recency-weighted opens and clicks per local hour. Events after `now` are left out: `now` is the
 * workflow's time, and a replay must decide as the first run did.
 */
export function engagementByHour(events: readonly EngagementSample[], timeZone: string, now: number, given?: BestSendTimeOptions): HourHistogram {
  const { halfLifeMs, lookbackMs } = options(given);
  const { zone } = zoneOf(timeZone);
  const histogram: HourHistogram = new Array<number>(HOURS_PER_DAY).fill(0);
  for (const event of events) {
    const age = now - event.timestamp;
    if (!Number.isFinite(event.timestamp) || age < 0 || age > lookbackMs || !isHumanEngagement(event)) continue;
    histogram[localHour(event.timestamp, zone)]! += Math.pow(0.5, age / halfLifeMs);
  }
  return histogram;
}

/**
 * The population's hours: each customer's recency-weighted histogram scaled to sum 1, then added up, so the prior
 * says when most *people* read, not when the few heaviest readers do. Each customer's hours are local to their zone.
 */
export function populationPrior(
  customers: Iterable<{ events: readonly EngagementSample[]; timeZone: string }>,
  now: number,
  given?: BestSendTimeOptions,
): HourHistogram {
  const prior: HourHistogram = new Array<number>(HOURS_PER_DAY).fill(0);
  for (const customer of customers) {
    const own = engagementByHour(customer.events, customer.timeZone, now, given);
    const total = sum(own);
    if (total === 0) continue;
    own.forEach((weight, hour) => (prior[hour]! += weight / total));
  }
  return prior;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/** The index of the largest value; ties go to the larger `tieBreak`, then to the earlier hour, so the answer is stable. */
function argmax(values: readonly number[], tieBreak: readonly number[]): number {
  let best = 0;
  for (let hour = 1; hour < values.length; hour++) {
    const [v, b] = [values[hour]!, values[best]!];
    if (v > b || (v === b && tieBreak[hour]! > tieBreak[best]!)) best = hour;
  }
  return best;
}

const fixed = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(1));
const clock = (hour: number): string => `${String(hour).padStart(2, '0')}:00`;

/**
 * The local hour when the customer engages most: their recency-weighted opens and clicks plus `priorWeight`
 * pseudo-engagements spread like the population's (`prior`, e.g. from populationPrior), so a customer with little
 * history gets the population's hour and one with a clear habit gets their own.
 */
export function bestSendHour(
  events: readonly EngagementSample[],
  timeZone: string,
  now: number,
  prior: readonly number[],
  given?: BestSendTimeOptions,
): BestSendHour {
  const settings = options(given);
  if (prior.length !== HOURS_PER_DAY || prior.some((w) => !(w >= 0) || !Number.isFinite(w))) {
    throw new RangeError(`best send time: the population prior must be 24 non-negative finite weights (one per local hour), got ${prior.length} values`);
  }
  const { zone, known } = zoneOf(timeZone);
  const where = known ? `local (${zone})` : `UTC (unknown time zone ${JSON.stringify(timeZone)})`;
  const own = engagementByHour(events, zone, now, settings);
  const ownTotal = sum(own);
  const priorTotal = sum(prior);
  const days = fixed(settings.lookbackMs / DAY_MS);

  if (ownTotal === 0 && priorTotal === 0) {
    return { hour: settings.defaultHour, reason: `${clock(settings.defaultHour)} ${where}: no opens or clicks in the last ${days} days, by this customer or anyone; the default hour` };
  }
  const priorShare = priorTotal === 0 ? prior.map(() => 0) : prior.map((w) => w / priorTotal);
  const blended = own.map((w, hour) => w + settings.priorWeight * priorShare[hour]!);
  const hour = argmax(blended, priorShare);
  const populationHour = argmax(priorShare, priorShare);
  const priorPart = priorTotal === 0 ? 'no population prior yet' : `population prior weight ${fixed(settings.priorWeight)} (population's hour ${populationHour}h)`;
  if (ownTotal === 0) {
    return { hour, reason: `${clock(hour)} ${where}: no opens or clicks by this customer in the last ${days} days; the population's hour, ${priorPart}` };
  }
  return {
    hour,
    reason: `${clock(hour)} ${where}: ${fixed(own[hour]!)} of ${fixed(ownTotal)} weighted opens/clicks in the last ${days} days at ${hour}h (half-life ${fixed(settings.halfLifeMs / DAY_MS)} days); ${priorPart}`,
  };
}

/**
 * The earliest moment at or after `at` outside the customer's quiet hours (`at` itself when it is not quiet). Passed
 * in, so best send time works with whichever quiet-hours rule the caller resolved.
 */
export type QuietHoursShift = (at: number) => number;

export interface BestSendAt {
  /** epoch ms */
  at: number;
  reason: string;
}

/**
 * The first moment within [from, from + within] whose local wall-clock hour is `hour` (`from` itself when it is
 * already in that hour), DST-safe: on a spring-forward day an hour that does not exist is skipped, on a fall-back day
 * a repeated hour is taken at its first occurrence. Without such a moment the send goes at `from`.
 *
 * With `quietHours`, a moment at the hour that is quiet is passed over for a later one at the hour that is not; when
 * none is, the send goes when the quiet hours after the hour (or after `from`) end, inside the window if that is
 * possible. Quiet hours are a rule and `within` a preference, so when every moment of the window is quiet the answer
 * is the end of the quiet hours even beyond `from + within`.
 */
export function bestSendAt(from: number, within: number, hour: number, timeZone: string, quietHours?: QuietHoursShift): BestSendAt {
  if (!Number.isFinite(from)) throw new RangeError(`best send time: from must be a time in epoch ms, got ${from}`);
  if (!(within >= 0) || !Number.isFinite(within)) throw new RangeError(`best send time: within must be a non-negative duration in ms, got ${within}`);
  checkHour(hour, 'hour');
  const { zone, known } = zoneOf(timeZone);
  const where = known ? `local (${zone})` : `UTC (unknown time zone ${JSON.stringify(timeZone)})`;
  const end = from + within;
  const allowed = (at: number): number => (quietHours === undefined ? at : Math.max(at, quietHours(at)));

  let firstAtHour: number | undefined;
  for (const at of momentsAtHour(from, end, hour, zone)) {
    firstAtHour ??= at;
    if (allowed(at) === at) {
      return { at, reason: `${clock(hour)} ${where}${at === from ? ', the current hour' : ''}: the customer's best hour, ${formatDelay(at - from)} after the send was due` };
    }
  }
  const quiet = quietHours === undefined ? '' : ' outside quiet hours';
  if (firstAtHour === undefined) {
    const at = allowed(from);
    return { at, reason: `${clock(hour)} ${where} does not occur within ${formatDelay(within)}${quiet}; sent ${at === from ? 'when due' : `when quiet hours end, ${formatDelay(at - from)} after it was due`}` };
  }
  const afterHour = allowed(firstAtHour);
  if (afterHour <= end) {
    return { at: afterHour, reason: `${clock(hour)} ${where} falls in quiet hours within ${formatDelay(within)}; sent when they end, ${formatDelay(afterHour - from)} after it was due` };
  }
  const at = allowed(from);
  const when = at === from ? 'sent when due' : `sent when quiet hours end, ${formatDelay(at - from)} after it was due`;
  return { at, reason: `${clock(hour)} ${where} falls in quiet hours within ${formatDelay(within)}, which end too late; ${when}` };
}

/**
 * Each run of the local hour in [from, end], by its first moment: `from` when it is in the hour, then each quarter
 * hour boundary where the hour begins. Scanning quarter hours rather than asking Luxon for "today at 19:00" keeps the
 * gap and overlap days exact in every zone, including those with half-hour DST (Australia/Lord_Howe).
 */
function* momentsAtHour(from: number, end: number, hour: number, zone: string): Generator<number> {
  let previous = localHour(from, zone);
  if (previous === hour) yield from;
  for (let at = Math.floor(from / QUARTER_HOUR_MS) * QUARTER_HOUR_MS + QUARTER_HOUR_MS; at <= end; at += QUARTER_HOUR_MS) {
    const current = localHour(at, zone);
    if (current === hour && previous !== hour) yield at;
    previous = current;
  }
}

function formatDelay(ms: number): string {
  if (ms === 0) return '0 min';
  // Rounded to the minute before it is split, so 8 h 59.9 min reads "9 h", not "8 h 60 min".
  const total = Math.round(ms / MINUTE_MS);
  const hours = Math.floor(total / (HOUR_MS / MINUTE_MS));
  const minutes = total % (HOUR_MS / MINUTE_MS);
  return hours === 0 ? `${minutes} min` : minutes === 0 ? `${hours} h` : `${hours} h ${minutes} min`;
}
