// `microflows segments report [--json]`: each segment's size, the overlap between segments, segments too small to
// matter (MICROFLOWS_SEGMENT_MIN_SIZE), segments no flow uses, and when each was last swept — read from the store.
// `microflows segments members <id> [--after <customer id>] [--limit n]`: one page of a segment's members.
import { readConfig } from '../core/config';
import { formatSegmentReport, segmentReport } from '../core/segment-report';
import { openStore } from '../store/open-store';
import { loadFlowFiles } from './project-files';
import { loadSegments, segmentIdsIn } from './segment-files';

export const SEGMENTS_ARGS = 'report [--json] | members <segment> [--after <id>] [--limit <n>]';

export async function runSegments(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const config = readConfig(process.env, process.cwd());
  const segments = loadSegments(config.segmentsDir);
  if (sub === 'report' && (rest.length === 0 || (rest.length === 1 && rest[0] === '--json'))) {
    const { flows } = loadFlowFiles(config.flowsDir, config.templatesDir, segmentIdsIn(config.segmentsDir));
    const store = openStore(config);
    try {
      await store.migrate();
      const { sizes, overlap } = await store.segmentCounts();
      const report = segmentReport({ segments, sizes, overlap, states: await store.segmentStates(), flows, minSize: config.segmentMinSize });
      process.stdout.write(rest[0] === '--json' ? `${JSON.stringify(report, null, 2)}\n` : formatSegmentReport(report));
      return 0;
    } finally {
      await store.close();
    }
  }
  if (sub === 'members' && rest[0] !== undefined && !rest[0].startsWith('--')) {
    const id = rest[0];
    if (!segments.some((s) => s.id === id)) {
      console.error(`no segment "${id}" in ${config.segmentsDir}: segments are ${segments.map((s) => s.id).join(', ') || '(none)'}`);
      return 1;
    }
    let after: string | null = null;
    let limit = 100;
    for (let i = 1; i < rest.length; i += 2) {
      const value = rest[i + 1];
      if (rest[i] === '--after' && value !== undefined) after = value;
      else if (rest[i] === '--limit' && value !== undefined && /^\d+$/.test(value) && Number(value) >= 1) limit = Number(value);
      else {
        console.error(`${rest[i]} ${value ?? ''}: expected --after <customer id> or --limit <n of at least 1>`);
        return 1;
      }
    }
    const store = openStore(config);
    try {
      await store.migrate();
      for (const member of await store.segmentMembers(id, { after, limit })) console.log(`${member.customerId}\t${new Date(member.enteredAt).toISOString()}`);
      return 0;
    } finally {
      await store.close();
    }
  }
  console.error(`usage: microflows segments ${SEGMENTS_ARGS}`);
  return 1;
}
