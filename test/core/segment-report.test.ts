// The segment report: sizes, the overlap matrix, too-small and unused segments (directly or through in_segment),
// and the last sweep — from counts, definitions and flows given as data.
import { formatSegmentReport, segmentReport, segmentsUsedBy } from '../../core/segment-report';
import { parseSegmentFile } from '../../core/segment-definition';
import type { FlowDefinition } from '../../core/flow-types';

function segment(id: string, rules: string) {
  const { segment: parsed, problems } = parseSegmentFile(`id: ${id}\nrules:\n${rules}`, `${id}.yaml`);
  if (!parsed) throw new Error(problems.map((p) => p.message).join('\n'));
  return parsed;
}

const SEGMENTS = [
  segment('vips', '  - rfm: { monetary: { gte: 5 } }'),
  segment('vips-at-risk', '  - in_segment: vips\n  - last_performed: { event: Order Completed, before: 60d }'),
  segment('browsers', '  - performed: { event: Product Viewed, within: 7d }'),
  segment('orphans', '  - performed: { event: Cart Viewed, within: 7d }'),
];

type FlowShape = Pick<FlowDefinition, 'id' | 'trigger' | 'entry' | 'exit' | 'nodes'>;
const FLOWS: FlowShape[] = [
  {
    id: 'winback-vips',
    trigger: { kind: 'event', event: 'Segment Entered', where: { 'event.properties.segment_id': 'vips-at-risk' } },
    entry: { reentry: { kind: 'always' }, onConflict: 'suppress' },
    exit: { onEvents: [] },
    nodes: {},
  },
  {
    id: 'browse',
    trigger: { kind: 'event', event: 'Product Viewed' },
    entry: { reentry: { kind: 'always' }, onConflict: 'suppress' },
    exit: { onEvents: [] },
    nodes: { 'steps[0]': { id: 'steps[0]', kind: 'split', when: { 'profile.segments': { contains: 'browsers' } }, then: null, else: null } },
  },
];

test('segmentsUsedBy finds segment triggers, waits and splits on profile.segments', () => {
  expect(segmentsUsedBy(FLOWS[0]!)).toEqual(['vips-at-risk']);
  expect(segmentsUsedBy(FLOWS[1]!)).toEqual(['browsers']);
});

test('the report flags small and unused segments, counts overlap both ways, and carries the last sweep', () => {
  const report = segmentReport({
    segments: SEGMENTS,
    sizes: { vips: 120, 'vips-at-risk': 30, browsers: 5000 },
    overlap: [
      { a: 'vips', b: 'vips-at-risk', shared: 30 },
      { a: 'browsers', b: 'vips', shared: 80 },
    ],
    states: [{ segmentId: 'vips', definedAt: 1, sweptAt: 1_700_000_000_000 }],
    flows: FLOWS,
    minSize: 100,
  });
  const row = (id: string) => report.segments.find((s) => s.id === id)!;
  expect(row('vips')).toMatchObject({ size: 120, tooSmall: false, usedByFlows: [], usedBySegments: ['vips-at-risk'], unused: false, lastEvaluatedAt: 1_700_000_000_000 });
  expect(row('vips-at-risk')).toMatchObject({ size: 30, tooSmall: true, usedByFlows: ['winback-vips'], unused: false, lastEvaluatedAt: null });
  expect(row('browsers')).toMatchObject({ tooSmall: false, usedByFlows: ['browse'], unused: false });
  expect(row('orphans')).toMatchObject({ size: 0, tooSmall: true, unused: true });
  expect(report.overlap.ids).toEqual(['vips', 'vips-at-risk', 'browsers', 'orphans']);
  expect(report.overlap.matrix).toEqual([
    [120, 30, 80, 0],
    [30, 30, 0, 0],
    [80, 0, 5000, 0],
    [0, 0, 0, 0],
  ]);
  const text = formatSegmentReport(report);
  expect(text).toMatch(/^orphans\s+0\s+never\s+-\s+TOO SMALL \(< 100\), UNUSED \(no flow uses it\)$/m);
  expect(text).toMatch(/^vips\s+120\s+2023-11-14T22:13:20Z\s+segment vips-at-risk$/m);
  expect(text).toMatch(/^\[3\] browsers\s+80\s+0\s+5000\s+0$/m);
});
