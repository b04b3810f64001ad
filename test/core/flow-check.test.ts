// The static flow checker: which trigger pairs can fire together (and only those), how arbitration settles them, ties
// as errors, and the graph and wait_for findings; flows are built by hand, segments parsed from their YAML.
import fc from 'fast-check';
import { compileCondition } from '../../core/conditions';
import { checkProject, graphFindings, triggersOverlap, valueClash, type CheckedFlow } from '../../core/flow-check';
import { segmentEntered } from '../../core/flow-compiler';
import type { FlowDefinition, FlowNode, Trigger } from '../../core/flow-types';
import { parseSegmentFile, type SegmentDefinition } from '../../core/segment-definition';
import { DEFAULT_SEND_POLICY, type SendPolicy } from '../../core/send-policy';

function flow(id: string, trigger: Trigger, extra: Partial<FlowDefinition> = {}): CheckedFlow {
  const nodes: Record<string, FlowNode> = extra.nodes ?? { 'steps[0]': { id: 'steps[0]', line: 9, kind: 'send', template: 't', data: {}, next: null } };
  return {
    flow: {
      id,
      version: 1,
      priority: 50,
      group: 'marketing',
      topic: null,
      trigger,
      entry: { reentry: { kind: 'always' }, onConflict: 'suppress' },
      exit: { onEvents: [] },
      start: 'steps[0]',
      defaultTimezone: 'UTC',
      source: { file: `flows/${id}.yaml`, sha256: '' },
      ...extra,
      nodes,
    },
    positions: { trigger: { line: 5, column: 1 }, priority: { line: 3, column: 1 } },
  };
}

function segment(yaml: string): SegmentDefinition {
  const { segment: parsed, problems } = parseSegmentFile(yaml, 'seg.yaml');
  if (!parsed) throw new Error(JSON.stringify(problems));
  return parsed;
}

const segments = (...list: SegmentDefinition[]) => new Map(list.map((s) => [s.id, s]));
const added = (where?: Record<string, unknown>): Trigger => ({ kind: 'event', event: 'Product Added', ...(where ? { where } : {}) });

describe('pairs of flows', () => {
  test('same event and priority in one group is a tie: an error at the second flow\'s priority line', () => {
    const report = checkProject({ flows: [flow('a', added()), flow('b', added({ 'event.properties.category': 'shoes' }))], segments: [] });
    expect(report.matrix.a!.b!.kind).toBe('tie');
    expect(report.findings).toEqual([expect.objectContaining({ file: 'flows/b.yaml', line: 3, severity: 'error', code: 'tie' })]);
  });

  test('the higher priority wins; other groups run side by side; other events are disjoint', () => {
    const report = checkProject({
      flows: [flow('a', added(), { priority: 90 }), flow('b', added()), flow('c', added(), { group: 'other' }), flow('d', { kind: 'event', event: 'Order Completed' })],
      segments: [],
    });
    expect(report.matrix.a!.b).toEqual(expect.objectContaining({ kind: 'wins', winner: 'a' }));
    expect(report.matrix.b!.c!.kind).toBe('both');
    expect(report.matrix.a!.d!.kind).toBe('disjoint');
    expect(report.findings.filter((f) => f.severity === 'error')).toEqual([]);
  });

  test('filters that no single event meets are disjoint, so equal priorities are no tie', () => {
    const pairs: Array<[Record<string, unknown>, Record<string, unknown>]> = [
      [{ 'event.properties.category': 'shoes' }, { 'event.properties.category': 'hats' }],
      [{ 'event.properties.price': { gte: 100 } }, { 'event.properties.price': { lt: 100 } }],
      [{ 'event.properties.category': { in: ['a', 'b'] } }, { 'event.properties.category': { nin: ['a', 'b'] } }],
      [{ 'event.properties.coupon': { exists: false } }, { 'event.properties.coupon': 'X' }],
    ];
    for (const [x, y] of pairs) expect(triggersOverlap(added(x), added(y), new Map()).may).toBe(false);
    expect(triggersOverlap(added({ 'event.properties.price': { gte: 100 } }), added({ 'event.properties.price': { lte: 100 } }), new Map()).may).toBe(true);
    expect(triggersOverlap(added({ any: [{ 'event.properties.a': 1 }] }), added({ 'event.properties.a': 2 }), new Map()).may).toBe(true);
  });

  test('segments whose rules contradict are disjoint; ones that can hold together may overlap', () => {
    const buyers = segment('id: buyers\nrules:\n  - performed: { event: Order Completed, within: 14d }\n');
    const lapsed = segment('id: lapsed\nrules:\n  - last_performed: { event: Order Completed, before: 60d }\n');
    const browsing = segment('id: browsing\nrules:\n  - performed: { event: Product Viewed, at_least: 3, within: 7d }\n  - not_performed: { event: Order Completed, within: 30d }\n');
    const known = segments(buyers, lapsed, browsing);
    const on = (id: string): Trigger => ({ kind: 'event', ...segmentEntered(id) });
    expect(triggersOverlap(on('buyers'), on('lapsed'), known).may).toBe(false);
    expect(triggersOverlap(on('buyers'), on('browsing'), known).may).toBe(false);
    expect(triggersOverlap(on('browsing'), on('lapsed'), known).may).toBe(true);
    expect(triggersOverlap(on('browsing'), on('unknown'), known).may).toBe(true);
    // The triggering order is itself an order, so a segment of no recent orders cannot be entered on it.
    expect(triggersOverlap(on('lapsed'), { kind: 'event', event: 'Order Completed' }, known).may).toBe(false);
    expect(triggersOverlap(on('lapsed'), added(), known).may).toBe(true);
    expect(triggersOverlap({ kind: 'inactivity', event: 'Order Completed', forMs: 30 * 86_400_000 }, on('buyers'), known).may).toBe(false);
    expect(triggersOverlap({ kind: 'inactivity', event: 'Order Completed', forMs: 30 * 86_400_000 }, { kind: 'event', event: 'Order Completed' }, known).may).toBe(false);
    expect(triggersOverlap({ kind: 'inactivity', event: 'Order Completed', forMs: 30 * 86_400_000 }, added(), known).may).toBe(true);
  });

  test('valueClash never calls satisfiable filters disjoint: a value meeting both is a counterexample', () => {
    const value = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom('a', 'b', 'c'));
    const operand = fc.oneof(
      value,
      fc.record({ eq: value }),
      fc.record({ ne: value }),
      fc.record({ in: fc.array(value, { maxLength: 3 }) }),
      fc.record({ nin: fc.array(value, { maxLength: 3 }) }),
      fc.record({ gte: fc.integer({ min: -3, max: 3 }) }),
      fc.record({ lt: fc.integer({ min: -3, max: 3 }) }),
      fc.record({ exists: fc.boolean() }),
    );
    fc.assert(
      fc.property(fc.array(operand, { minLength: 1, maxLength: 3 }), (operands) => {
        if (valueClash(operands) === null) return;
        // Brute force over every value the operands mention, plus none at all.
        const candidates: unknown[] = [undefined, -4, -3, -2, -1, 0, 1, 2, 3, 4, 'a', 'b', 'c'];
        for (const candidate of candidates) {
          const event = candidate === undefined ? {} : { x: candidate };
          const meetsAll = operands.every((op) => compileCondition({ 'event.x': op })({ event }));
          expect({ operands, candidate, meetsAll }).toEqual({ operands, candidate, meetsAll: false });
        }
      }),
    );
  });
});

describe('one flow', () => {
  const send = (id: string, line: number, next: string | null): FlowNode => ({ id, line, kind: 'send', template: 't', data: {}, next });

  test('a node no path reaches, and a cycle with no wait, are errors at their lines', () => {
    const nodes: Record<string, FlowNode> = {
      'steps[0]': send('steps[0]', 6, 'steps[1]'),
      'steps[1]': { id: 'steps[1]', line: 7, kind: 'split', when: {}, then: 'steps[0]', else: null },
      'steps[2]': send('steps[2]', 9, null),
    };
    const findings = graphFindings(flow('a', added(), { nodes }).flow);
    expect(findings).toEqual([
      expect.objectContaining({ line: 9, code: 'unreachable', severity: 'error' }),
      expect.objectContaining({ line: 6, code: 'loop_without_wait', severity: 'error' }),
    ]);
  });

  test('an ab_split leads to every variant: none is unreachable, and a cycle back through any variant without a wait is a loop', () => {
    const abSplit = (next: Array<string | null>): FlowNode => ({
      id: 'steps[1]',
      line: 7,
      kind: 'ab_split',
      experiment: 'a/x',
      variants: next.map((n, i) => ({ name: `v${i}`, weight: 100 / next.length, next: n })),
      winner: null,
    });
    const nodes = (next: Array<string | null>, loopBack: string | null): Record<string, FlowNode> => ({
      'steps[0]': { id: 'steps[0]', line: 6, kind: 'wait', ms: 1000, next: 'steps[1]' },
      'steps[1]': abSplit(next),
      'steps[1].variants[0].steps[0]': send('steps[1].variants[0].steps[0]', 9, null),
      'steps[1].variants[1].steps[0]': send('steps[1].variants[1].steps[0]', 11, null),
      'steps[1].variants[2].steps[0]': send('steps[1].variants[2].steps[0]', 13, loopBack),
    });
    const variants = ['steps[1].variants[0].steps[0]', 'steps[1].variants[1].steps[0]', 'steps[1].variants[2].steps[0]'];
    expect(graphFindings(flow('a', added(), { nodes: nodes(variants, null) }).flow)).toEqual([]);
    // Only the third variant reaches its send, or loops: each finding depends on walking every variant.
    expect(graphFindings(flow('a', added(), { nodes: nodes([variants[0]!, variants[1]!, null], null) }).flow)).toEqual([
      expect.objectContaining({ line: 13, path: 'steps[1].variants[2].steps[0]', code: 'unreachable' }),
    ]);
    expect(graphFindings(flow('a', added(), { nodes: nodes(variants, 'steps[1]') }).flow)).toEqual([
      expect.objectContaining({ line: 7, code: 'loop_without_wait', message: expect.stringContaining('lines 7, 13') }),
    ]);
  });

  test('a cycle through a wait is fine', () => {
    const nodes: Record<string, FlowNode> = {
      'steps[0]': send('steps[0]', 6, 'steps[1]'),
      'steps[1]': { id: 'steps[1]', line: 7, kind: 'wait', ms: 1000, next: 'steps[0]' },
    };
    expect(graphFindings(flow('a', added(), { nodes }).flow)).toEqual([]);
  });

  test('wait_for on an event nothing sends is a warning, unless a trigger, segment or declaration names it', () => {
    const nodes: Record<string, FlowNode> = {
      'steps[0]': { id: 'steps[0]', line: 6, kind: 'wait_for', match: { event: 'Gift Wrapped' }, timeoutMs: 1000, onEvent: null, onTimeout: null },
    };
    const waiting = flow('a', added(), { nodes });
    expect(checkProject({ flows: [waiting], segments: [] }).findings).toEqual([expect.objectContaining({ line: 6, code: 'unknown_wait_event', severity: 'warning' })]);
    expect(checkProject({ flows: [waiting], segments: [], declaredEvents: ['Gift Wrapped'] }).findings).toEqual([]);
    expect(checkProject({ flows: [waiting, flow('b', { kind: 'event', event: 'Gift Wrapped' }, { group: 'other' })], segments: [] }).findings).toEqual([]);
    const wraps = segment('id: wraps\nrules:\n  - performed: { event: Gift Wrapped }\n');
    expect(checkProject({ flows: [waiting], segments: [wraps] }).findings).toEqual([]);
  });
});

describe('frequency caps: sends the flow\'s own earlier sends push into a cap', () => {
  const HOUR = 3_600_000;
  const marketingDaily = { name: 'marketing-daily', group: 'marketing', topic: null, transactional: false, max: 1, perMs: 24 * HOUR };
  const policy = (extra: Partial<SendPolicy> = {}): SendPolicy => ({ ...DEFAULT_SEND_POLICY, caps: [marketingDaily], ...extra });
  const send = (i: number, next: string | null, template = 'nudge'): FlowNode => ({ id: `steps[${i}]`, line: 10 + i, kind: 'send', template, data: {}, next });
  const wait = (i: number, ms: number, next: string | null): FlowNode => ({ id: `steps[${i}]`, line: 10 + i, kind: 'wait', ms, next });
  /** send, wait, send, wait, send: the gaps given, lines 10..14. */
  const threeSends = (gap1: number, gap2: number, extra: Partial<FlowDefinition> = {}) =>
    flow('nudges', added(), {
      ...extra,
      nodes: {
        'steps[0]': send(0, 'steps[1]'),
        'steps[1]': wait(1, gap1, 'steps[2]'),
        'steps[2]': send(2, 'steps[3]'),
        'steps[3]': wait(3, gap2, 'steps[4]'),
        'steps[4]': send(4, null),
      },
    });
  const capCodes = ['starved_by_cap', 'deferral_beyond_limit', 'deferral_beyond_wait'];
  const capFindingsOf = (flows: CheckedFlow[], input: Partial<Parameters<typeof checkProject>[0]> = {}) =>
    checkProject({ flows, segments: [], ...input }).findings.filter((f) => capCodes.includes(f.code));

  test('three sends within a 1-per-24h cap with on_cap skip: the later two are always skipped, errors at their lines', () => {
    const findings = capFindingsOf([threeSends(2 * HOUR, 4 * HOUR)], { policy: policy({ onCap: 'skip' }) });
    expect(findings).toEqual([
      expect.objectContaining({ file: 'flows/nudges.yaml', line: 12, path: 'steps[2]', severity: 'error', code: 'starved_by_cap', message: expect.stringContaining('cap "marketing-daily" (1 per 1d)') }),
      expect.objectContaining({ line: 14, path: 'steps[4]', severity: 'error', code: 'starved_by_cap' }),
    ]);
    expect(findings[0]!.message).toContain('send at line 10');
  });

  test('sends a full window apart, transactional sends, other groups and no policy are not starved', () => {
    expect(capFindingsOf([threeSends(24 * HOUR, 24 * HOUR)], { policy: policy({ onCap: 'skip' }) })).toEqual([]);
    expect(capFindingsOf([threeSends(HOUR, HOUR)], { policy: policy({ onCap: 'skip' }), templateCategory: () => 'transactional' })).toEqual([]);
    expect(capFindingsOf([threeSends(HOUR, HOUR, { group: 'lifecycle' })], { policy: policy({ onCap: 'skip' }) })).toEqual([]);
    expect(capFindingsOf([threeSends(HOUR, HOUR)])).toEqual([]);
    // The policy's default is defer: the same flow is then deferred, not starved.
    expect(capFindingsOf([threeSends(HOUR, 30 * HOUR)], { policy: policy() }).filter((f) => f.severity === 'error')).toEqual([]);
  });

  test('the flow\'s on_cap overrides the policy\'s, both ways', () => {
    expect(capFindingsOf([threeSends(2 * HOUR, 30 * HOUR, { onCap: 'skip' })], { policy: policy({ onCap: 'defer' }) }).map((f) => f.code)).toEqual(['starved_by_cap']);
    expect(capFindingsOf([threeSends(2 * HOUR, 4 * HOUR, { onCap: 'defer' })], { policy: policy({ onCap: 'skip' }) }).map((f) => f.code)).toEqual(['deferral_beyond_wait']);
  });

  test('with defer, a deferral longer than the wait after the send is a warning at the send', () => {
    // Send 2 is due 4h after send 1, deferred 20h, and the file waits only 2h after it.
    const findings = capFindingsOf([threeSends(4 * HOUR, 2 * HOUR)], { policy: policy() });
    expect(findings).toEqual([expect.objectContaining({ line: 12, path: 'steps[2]', severity: 'warning', code: 'deferral_beyond_wait', message: expect.stringContaining('deferred 20h') })]);
    expect(findings[0]!.message).toContain('2h wait after it at line 13');
    // A wait after the send longer than the deferral keeps the file's timing: nothing to report.
    expect(capFindingsOf([threeSends(4 * HOUR, 21 * HOUR)], { policy: policy() })).toEqual([]);
  });

  test('a deferral that can exceed defer.max warns; one that always does starves the send', () => {
    const sometimes = flow('waits', added(), {
      nodes: {
        'steps[0]': send(0, 'steps[1]'),
        'steps[1]': { id: 'steps[1]', line: 11, kind: 'wait_for', match: { event: 'Order Completed' }, timeoutMs: 20 * HOUR, onEvent: 'steps[2]', onTimeout: null },
        'steps[2]': send(2, null),
      },
    });
    // On the event the send can be due at once (deferred 24h > 12h) or after 20h (deferred 4h): sometimes skipped.
    expect(capFindingsOf([sometimes], { policy: policy({ deferMaxMs: 12 * HOUR }) })).toEqual([
      expect.objectContaining({ line: 12, severity: 'warning', code: 'deferral_beyond_limit', message: expect.stringContaining('beyond defer.max 12h') }),
    ]);
    // Due 2h after the first send: 22h of deferral, always beyond 12h.
    expect(capFindingsOf([threeSends(2 * HOUR, 30 * HOUR, { deferMaxMs: 12 * HOUR })], { policy: policy() })).toEqual([
      expect.objectContaining({ line: 12, severity: 'error', code: 'starved_by_cap', message: expect.stringContaining('longer than defer.max 12h') }),
    ]);
  });

  test('a wait that can run past the window is no starvation, only on the branch where it cannot', () => {
    const nodes: Record<string, FlowNode> = {
      'steps[0]': send(0, 'steps[1]'),
      'steps[1]': { id: 'steps[1]', line: 11, kind: 'wait_for', match: { event: 'Order Completed' }, timeoutMs: 30 * HOUR, onEvent: 'steps[2]', onTimeout: 'steps[3]' },
      'steps[2]': send(2, null),
      'steps[3]': send(3, null),
    };
    // on_event can come 30h later (room again), on_timeout always does: neither is always skipped.
    expect(capFindingsOf([flow('branches', added(), { nodes })], { policy: policy({ onCap: 'skip' }) })).toEqual([]);
    const split: Record<string, FlowNode> = {
      'steps[0]': send(0, 'steps[1]'),
      'steps[1]': { id: 'steps[1]', line: 11, kind: 'split', when: {}, then: 'steps[2]', else: 'steps[3]' },
      'steps[2]': send(2, null),
      'steps[3]': wait(3, 25 * HOUR, 'steps[4]'),
      'steps[4]': send(4, null),
    };
    expect(capFindingsOf([flow('split', added(), { nodes: split })], { policy: policy({ onCap: 'skip' }) })).toEqual([expect.objectContaining({ line: 12, code: 'starved_by_cap' })]);
  });

  test('each variant of an ab_split is a path of its own: a send crowded in one variant is starved there only', () => {
    const nodes: Record<string, FlowNode> = {
      'steps[0]': send(0, 'steps[1]'),
      'steps[1]': {
        id: 'steps[1]',
        line: 11,
        kind: 'ab_split',
        experiment: 'split/steps[1]',
        variants: [
          { name: 'soon', weight: 50, next: 'steps[1].variants[0].steps[0]' },
          { name: 'later', weight: 50, next: 'steps[1].variants[1].steps[0]' },
        ],
        winner: null,
      },
      'steps[1].variants[0].steps[0]': { id: 'steps[1].variants[0].steps[0]', line: 13, kind: 'wait', ms: 2 * HOUR, next: 'steps[1].variants[0].steps[1]' },
      'steps[1].variants[0].steps[1]': { id: 'steps[1].variants[0].steps[1]', line: 14, kind: 'send', template: 'nudge', data: {}, next: null },
      'steps[1].variants[1].steps[0]': { id: 'steps[1].variants[1].steps[0]', line: 16, kind: 'wait', ms: 25 * HOUR, next: 'steps[1].variants[1].steps[1]' },
      'steps[1].variants[1].steps[1]': { id: 'steps[1].variants[1].steps[1]', line: 17, kind: 'send', template: 'nudge', data: {}, next: null },
    };
    expect(capFindingsOf([flow('split', added(), { nodes })], { policy: policy({ onCap: 'skip' }) })).toEqual([
      expect.objectContaining({ line: 14, path: 'steps[1].variants[0].steps[1]', code: 'starved_by_cap' }),
    ]);
  });

  test('a loop that sends more often than the cap allows starves its second round', () => {
    const nodes: Record<string, FlowNode> = {
      'steps[0]': send(0, 'steps[1]'),
      'steps[1]': wait(1, 6 * HOUR, 'steps[0]'),
    };
    expect(capFindingsOf([flow('loop', added(), { nodes })], { policy: policy({ onCap: 'skip' }) })).toEqual([expect.objectContaining({ line: 10, code: 'starved_by_cap' })]);
  });

  test('the policy\'s events declare what a wait_for listens to', () => {
    const nodes: Record<string, FlowNode> = {
      'steps[0]': { id: 'steps[0]', line: 6, kind: 'wait_for', match: { event: 'Gift Wrapped' }, timeoutMs: 1000, onEvent: null, onTimeout: null },
    };
    const waiting = flow('a', added(), { nodes });
    expect(checkProject({ flows: [waiting], segments: [], policy: DEFAULT_SEND_POLICY }).findings).toEqual([expect.objectContaining({ code: 'unknown_wait_event', message: expect.stringContaining('events: in flows/policy.yaml') })]);
    expect(checkProject({ flows: [waiting], segments: [], policy: { ...DEFAULT_SEND_POLICY, events: ['Gift Wrapped'] } }).findings).toEqual([]);
  });
});
