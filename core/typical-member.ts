// A synthetic typical member of a segment, for previewing a template "as" that audience: the behavior of the member
// nearest the segment's medians (what they browse, buy and hold in their cart), with traits that are the members'
// most common values — and names, emails and other identifying traits replaced by placeholders, so a preview never
// shows a real person. Pure and deterministic: the same members give the same profile.
import { behaviorView } from './behavior';
import type { Profile } from './profile';

/** Numeric fields of the profile view that say how a customer behaves; the typical member is nearest their medians. */
export const TYPICAL_FIELDS = ['behavior_score', 'orders_count', 'total_spent', 'product_views', 'page_views', 'visit_days', 'opens_30d', 'clicks_30d'] as const;

/** Traits that identify a person: a preview shows these placeholders instead. */
export const PLACEHOLDER_TRAITS: Readonly<Record<string, string>> = {
  first_name: 'Alex',
  firstName: 'Alex',
  last_name: 'Sample',
  lastName: 'Sample',
  name: 'Alex Sample',
  username: 'alex.sample',
  phone: '+1 555 0100',
  address: '1 Sample Street',
  birthday: '1990-01-01',
  avatar: '',
  id: 'typical-member',
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The most common value (as JSON), ties broken by the JSON text so the result does not depend on member order. */
function mode(values: unknown[]): unknown {
  const counts = new Map<string, number>();
  for (const value of values) {
    const key = JSON.stringify(value);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  let best: [string, number] | undefined;
  for (const entry of [...counts].sort((a, b) => (a[0] < b[0] ? -1 : 1))) if (!best || entry[1] > best[1]) best = entry;
  return best === undefined ? undefined : JSON.parse(best[0]);
}

export interface TypicalMember {
  profile: Profile;
  /** For the preview's "for:" line: how many members it stands for and the medians it was chosen by. */
  description: string;
}

/**
 * `members` are the segment's members (or a sample of them); `isMember` checks the synthetic profile still belongs,
 * with the events of the member whose behavior it took (traits replaced by the common ones might not: then that
 * member's own traits are kept, identity aside).
 */
export function typicalMember(segmentId: string, members: Profile[], now: number, isMember: (synthetic: Profile, nearest: Profile) => boolean): TypicalMember | null {
  if (members.length === 0) return null;
  const views = members.map((m) => ({ member: m, view: behaviorView(m.computed, now) }));
  const medians = Object.fromEntries(TYPICAL_FIELDS.map((field) => [field, median(views.map((v) => Number(v.view[field]) || 0))]));
  // Distance in units of each field's spread (its median absolute deviation, at least 1), so no field dominates.
  const spread = Object.fromEntries(TYPICAL_FIELDS.map((field) => [field, Math.max(1, median(views.map((v) => Math.abs((Number(v.view[field]) || 0) - medians[field]!))))]));
  const distance = (view: Record<string, unknown>) => TYPICAL_FIELDS.reduce((sum, field) => sum + Math.abs((Number(view[field]) || 0) - medians[field]!) / spread[field]!, 0);
  const nearest = [...views].sort((a, b) => distance(a.view) - distance(b.view) || (a.member.customerId < b.member.customerId ? -1 : 1))[0]!.member;

  const traitKeys = [...new Set(members.flatMap((m) => Object.keys(m.traits)))].sort();
  const commonTraits: Record<string, unknown> = {};
  for (const key of traitKeys) {
    const held = members.filter((m) => m.traits[key] !== undefined && m.traits[key] !== null);
    // A trait most members lack is not typical; a placeholder stands in for identifying ones either way.
    if (held.length * 2 < members.length) continue;
    commonTraits[key] = PLACEHOLDER_TRAITS[key] ?? mode(held.map((m) => m.traits[key]));
  }
  const identityFree = (traits: Record<string, unknown>) => Object.fromEntries(Object.entries(traits).map(([k, v]) => [k, PLACEHOLDER_TRAITS[k] ?? v]));
  const consent = Object.fromEntries(
    [...new Set(members.flatMap((m) => Object.keys(m.consent)))].sort().map((kind) => [kind, { granted: mode(members.map((m) => m.consent[kind]?.granted === true)) === true, source: 'typical-member', at: now }]),
  );
  const manualTags = [...new Set(members.flatMap((m) => m.tags))].filter((tag) => members.filter((m) => m.tags.includes(tag)).length * 2 >= members.length).sort();
  const synthetic: Profile = {
    customerId: `typical-${segmentId}`,
    email: 'typical-member@example.com',
    timezone: (mode(members.map((m) => m.timezone)) as string | null) ?? null,
    traits: { ...commonTraits, email: 'typical-member@example.com' },
    traitTimes: {},
    computed: nearest.computed,
    consent,
    tags: manualTags,
    updatedAt: now,
  };
  if (!isMember(synthetic, nearest)) synthetic.traits = { ...identityFree(nearest.traits), email: 'typical-member@example.com' };
  const medianText = TYPICAL_FIELDS.filter((f) => medians[f] !== 0).map((f) => `${f} ${medians[f]}`).join(', ');
  return {
    profile: synthetic,
    description: `a synthetic typical member of "${segmentId}" (${members.length} member${members.length === 1 ? '' : 's'}; medians: ${medianText || 'all zero'}; names and contact details are placeholders)`,
  };
}
