// A customer's profile as it was at a past moment: the fold of their events up to then, so a rule evaluated for
// that moment reads what was true then, not today's profile. What no event dates (tags and fields set by flows or
// the API) is taken from today's profile where its own time allows.
import type { Computed } from './behavior';
import { applyEventsInPlace, emptyProfile, type Profile, type ProfileEvent } from './profile';

/**
 * Profiles at non-decreasing moments, folded incrementally: `at(t)` costs only the events since the previous call.
 * `events` are the customer's events in any order; they are folded in time order (arrival order breaks ties).
 * `computedBase`: what the customer's purged events folded into (event retention), the fold's start. Exact for
 * moments after the purge horizon; before it, the purged events' whole contribution already counts.
 */
export class ProfileHistory {
  private readonly events: ProfileEvent[];
  private readonly folded: Profile;
  private next = 0;
  private last = -Infinity;

  constructor(
    private readonly current: Profile,
    events: readonly ProfileEvent[],
    computedBase?: Computed | null,
  ) {
    this.events = events.map((event, order) => ({ event, order })).sort((a, b) => a.event.timestamp - b.event.timestamp || a.order - b.order).map(({ event }) => event);
    this.folded = emptyProfile(current.customerId, current.updatedAt);
    if (computedBase) this.folded.computed = JSON.parse(JSON.stringify(computedBase)) as Computed;
  }

  /** The latest event time (-Infinity when there are none): from then on the profile is today's. */
  get latestEventAt(): number {
    return this.events.length > 0 ? this.events[this.events.length - 1]!.timestamp : -Infinity;
  }

  /** The profile as of `at` (events with timestamp ≤ at). Calls must not go back in time. */
  at(at: number): Profile {
    if (at < this.last) throw new RangeError(`ProfileHistory.at(${at}) after at(${this.last}): moments must not go back`);
    this.last = at;
    if (at >= this.latestEventAt) return this.current;
    const due: Array<{ event: ProfileEvent; now: number }> = [];
    while (this.next < this.events.length && this.events[this.next]!.timestamp <= at) {
      const event = this.events[this.next++]!;
      due.push({ event, now: event.timestamp });
    }
    applyEventsInPlace(this.folded, due);
    return withUndatedState(this.folded, this.current, at);
  }
}

/**
 * The folded profile with what today's profile knows that no event dates: a trait or consent set at or before `at`
 * (by a flow, the API, an unsubscribe link) and not set later is what held at `at`; tags carry no time at all.
 */
function withUndatedState(folded: Profile, current: Profile, at: number): Profile {
  const profile: Profile = { ...folded, traits: { ...folded.traits }, traitTimes: { ...folded.traitTimes }, consent: { ...folded.consent }, tags: [...current.tags] };
  for (const [key, time] of Object.entries(current.traitTimes)) {
    if (time > at || (profile.traitTimes[key] ?? -Infinity) >= time) continue;
    profile.traits[key] = current.traits[key];
    profile.traitTimes[key] = time;
    if (key === 'email') profile.email = current.email;
    if (key === 'timezone') profile.timezone = current.timezone;
  }
  for (const [kind, record] of Object.entries(current.consent)) {
    if (record.at <= at && (profile.consent[kind]?.at ?? -Infinity) < record.at) profile.consent[kind] = record;
  }
  return profile;
}
