// Finds a segment's members in the store (segments/<id>.yaml, a condition on the profile view) and builds the
// synthetic typical member that `microflows preview --as <segment>` renders for.
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../core/config';
import { compileCondition } from '../core/conditions';
import { formatProblem } from '../core/errors';
import { profileContext, type Profile } from '../core/profile';
import { parseSegmentFile } from '../core/segment-definition';
import { typicalMember, type TypicalMember } from '../core/typical-member';
import type { Store } from '../store/store';

/** Profiles read per page, and at most this many members are looked at (a sample is typical enough). */
const PAGE = 500;
const MAX_MEMBERS = 10_000;

export async function typicalMemberProfile(store: Pick<Store, 'listProfiles'>, segmentId: string, config: Pick<Config, 'segmentsDir'>, now: number): Promise<TypicalMember> {
  const file = path.join(config.segmentsDir, `${segmentId}.yaml`);
  if (!fs.existsSync(file)) {
    const known = fs.existsSync(config.segmentsDir) ? fs.readdirSync(config.segmentsDir).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)) : [];
    throw new Error(`no segment "${segmentId}": add ${file}${known.length ? `, or use one of: ${known.sort().join(', ')}` : ''}`);
  }
  const { segment, problems } = parseSegmentFile(fs.readFileSync(file, 'utf8'), file);
  if (!segment) throw new Error(problems.map(formatProblem).join('\n'));
  const isMember = compileCondition(segment.when, `${file}: when`);
  const members: Profile[] = [];
  for (let after: string | null = null; members.length < MAX_MEMBERS; ) {
    const page = await store.listProfiles({ after, limit: PAGE });
    for (const profile of page) if (isMember(profileContext(profile, now))) members.push(profile);
    if (page.length < PAGE) break;
    after = page[page.length - 1]!.customerId;
  }
  const typical = typicalMember(segment.id, members, now, isMember);
  if (!typical) throw new Error(`segment "${segment.id}" has no members in the store yet, so there is no typical member to show: preview with --profile <customer id> instead`);
  return typical;
}
