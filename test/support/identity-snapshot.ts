// Everything the store holds about some ids (what they resolve to, profile, aliases, events) and every table's row
// count: taken before and after a refused call, the two must be equal.
import type { Store } from '../../store/store';

export async function identitySnapshot(store: Store, ids: string[]) {
  const people = [];
  for (const id of ids) {
    people.push({
      id,
      resolves: await store.resolveCustomerId(id),
      profile: await store.getProfile(id),
      aliases: await store.aliasesOf(id),
      events: (await store.recentEvents(id, 1000)).map((e) => [e.messageId, e.customerId, e.type, e.name]),
    });
  }
  return { people, counts: await store.tableCounts() };
}
