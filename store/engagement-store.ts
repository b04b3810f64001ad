// The population's opens and clicks, for best send time's prior (core/best-send-time populationPrior): the newest
// engagement events of everyone since a time, with the customer's profile time zone, bounded so the read stays cheap
// on a large store (the prior is a shape, not a census).
import type { Kysely } from 'kysely';
import { parseJson } from './rows';
import type { Database } from './schema';

export interface EngagementRow {
  customerId: string;
  name: string | null;
  properties: Record<string, unknown>;
  timestamp: number;
  /** The profile's timezone trait; null when it has none. */
  profileTimezone: string | null;
  /** The event's context.timezone, when it carried one. */
  eventTimezone: string | null;
}

/** The newest `limit` events named `names` since `since`, newest first. */
export async function engagementSince(db: Kysely<Database>, names: readonly string[], since: number, limit: number): Promise<EngagementRow[]> {
  if (names.length === 0 || limit <= 0) return [];
  const rows = await db
    .selectFrom('events')
    .leftJoin('profiles', 'profiles.customer_id', 'events.customer_id')
    .select(['events.customer_id as customer_id', 'events.name as name', 'events.properties as properties', 'events.context as context', 'events.timestamp as timestamp', 'profiles.timezone as timezone'])
    .where('events.type', '=', 'track')
    .where('events.name', 'in', [...names])
    .where('events.timestamp', '>=', since)
    .orderBy('events.timestamp', 'desc')
    .limit(limit)
    .execute();
  return rows.map((row) => {
    const context = parseJson<Record<string, unknown>>(row.context);
    return {
      customerId: row.customer_id,
      name: row.name,
      properties: parseJson<Record<string, unknown>>(row.properties),
      timestamp: Number(row.timestamp),
      profileTimezone: row.timezone ?? null,
      eventTimezone: typeof context.timezone === 'string' ? context.timezone : null,
    };
  });
}
