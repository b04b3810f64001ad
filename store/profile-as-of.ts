// Reads a customer's profile as it stood at a past moment, on either backend: today's row and the customer's events
// up to that moment, folded by core/profile-as-of. Kept apart from kysely-store.ts, which holds every table family.
import type { Kysely } from 'kysely';
import type { Computed } from '../core/behavior';
import type { Profile, ProfileEvent } from '../core/profile';
import { profileAsOf, segmentsAsOf } from '../core/profile-as-of';
import { parseJson, SEGMENT_CHANGE_NAMES, toProfile, toProfileEvent } from './rows';
import type { Database } from './schema';

/**
 * The customer's events with their own time at or before `at`, in time order (ties by arrival), and one later event
 * that changes the profile, if there is one: the fold ignores it, but it tells core/profile-as-of that today's
 * profile is not the one at `at`. So a late decision reads the history up to its moment, not the whole of it.
 */
async function eventsFor(db: Kysely<Database>, customerId: string, at: number): Promise<ProfileEvent[]> {
  const columns = ['type', 'name', 'properties', 'traits', 'timestamp'] as const;
  const upTo = await db
    .selectFrom('events')
    .select(columns)
    .where('customer_id', '=', customerId)
    .where('timestamp', '<=', at)
    .orderBy('timestamp', 'asc')
    .orderBy('id', 'asc')
    .execute();
  const later = await db
    .selectFrom('events')
    .select(columns)
    .where('customer_id', '=', customerId)
    .where('timestamp', '>', at)
    .where((eb) => eb.or([eb('name', 'is', null), eb('name', 'not in', SEGMENT_CHANGE_NAMES)]))
    .limit(1)
    .execute();
  return [...upTo, ...later].map(toProfileEvent);
}

export async function readProfileAsOf(db: Kysely<Database>, customerId: string, at: number, options: { withSegments?: boolean } = {}): Promise<Profile | undefined> {
  const row = await db.selectFrom('profiles').selectAll().where('customer_id', '=', customerId).executeTakeFirst();
  if (!row) return undefined;
  const events = await eventsFor(db, customerId, at);
  // Purged events (event retention) live on in the baseline their fold left: the fold at `at` starts from it.
  const profile = profileAsOf(toProfile(row), events, at, row.computed_base ? parseJson<Computed>(row.computed_base) : null);
  if (profile && options.withSegments) profile.segments = segmentsAsOf(events, at);
  return profile;
}
