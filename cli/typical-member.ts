// Finds a segment's members in the store (segments/<id>.yaml: rules on events and the profile view) and builds the
// synthetic typical member that `microflows preview --as <segment>` renders for.
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../core/config';
import { formatProblem } from '../core/errors';
import { profileContext, type Profile } from '../core/profile';
import { parseSegmentFile } from '../core/segment-definition';
import { evaluateSegmentRule, eventsRead, longestWindow, type CustomerFacts, type FactEvent, type SegmentRule } from '../core/segment-rules';
import { typicalMember, type TypicalMember } from '../core/typical-member';
import type { Store } from '../store/store';

/** Profiles read per page; at most this many members are looked at, out of at most this many profiles (a sample is typical enough). */
const PAGE = 500;
const MAX_MEMBERS = 10_000;
const MAX_SCANNED = 50_000;

export async function typicalMemberProfile(store: Pick<Store, 'listProfiles' | 'eventsOf'>, segmentId: string, config: Pick<Config, 'segmentsDir'>, now: number): Promise<TypicalMember> {
  const file = path.join(config.segmentsDir, `${segmentId}.yaml`);
  if (!fs.existsSync(file)) {
    const known = fs.existsSync(config.segmentsDir) ? fs.readdirSync(config.segmentsDir).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)) : [];
    throw new Error(`no segment "${segmentId}": add ${file}${known.length ? `, or use one of: ${known.sort().join(', ')}` : ''}`);
  }
  const { segment, problems } = parseSegmentFile(fs.readFileSync(file, 'utf8'), file);
  if (!segment) throw new Error(problems.map(formatProblem).join('\n'));
  const others = new Map<string, SegmentRule | null>();
  const ruleOf = (id: string): SegmentRule | null => {
    if (!others.has(id)) {
      const other = path.join(config.segmentsDir, `${id}.yaml`);
      others.set(id, null); // a segment that includes itself is out, not a loop
      if (fs.existsSync(other)) others.set(id, parseSegmentFile(fs.readFileSync(other, 'utf8'), other).segment?.rule ?? null);
    }
    return others.get(id) ?? null;
  };
  const names = eventsRead(segment.rule);
  const window = longestWindow(segment.rule);
  const eventsOf = async (customerId: string): Promise<FactEvent[]> =>
    names.length === 0 ? [] : (await store.eventsOf(customerId, { names, ...(window === null ? {} : { since: now - window }) })).map((e) => ({ name: e.name, properties: e.properties, timestamp: e.timestamp }));
  const evaluate = (rule: SegmentRule, profile: Profile, events: FactEvent[]): boolean => {
    const facts: CustomerFacts = {
      view: profileContext(profile, now),
      events,
      // RFM scores come with the segment sweep; until then an rfm rule holds for no one here.
      rfm: null,
      inSegment: (id) => {
        const other = ruleOf(id);
        return other !== null && evaluate(other, profile, events);
      },
      segmentNextChange: () => ({ nextChange: null, exactChange: null }),
    };
    return evaluateSegmentRule(rule, facts, now).member;
  };
  const members: Profile[] = [];
  const eventsByMember = new Map<string, FactEvent[]>();
  let scanned = 0;
  for (let after: string | null = null; members.length < MAX_MEMBERS && scanned < MAX_SCANNED; ) {
    const page = await store.listProfiles({ after, limit: PAGE });
    for (const profile of page) {
      const events = await eventsOf(profile.customerId);
      if (!evaluate(segment.rule, profile, events)) continue;
      members.push(profile);
      eventsByMember.set(profile.customerId, events);
    }
    scanned += page.length;
    if (page.length < PAGE) break;
    after = page[page.length - 1]!.customerId;
  }
  const typical = typicalMember(segment.id, members, now, (synthetic, nearest) => evaluate(segment.rule, synthetic, eventsByMember.get(nearest.customerId) ?? []));
  if (!typical) throw new Error(`segment "${segment.id}" has no members in the store yet, so there is no typical member to show: preview with --profile <customer id> instead`);
  return typical;
}
