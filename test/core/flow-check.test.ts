// The static flow checker: which trigger pairs can fire together (and only those), how arbitration settles them, ties
// as errors, and the graph and wait_for findings; flows are built by hand, segments parsed from their YAML.
import fc from 'fast-check';
import { compileCondition } from '../../core/conditions';
import { checkProject, graphFindings, triggersOverlap, valueClash, type CheckedFlow } from '../../core/flow-check';
import { segmentEntered } from '../../core/flow-compiler';
import type { FlowDefinition, FlowNode, Trigger } from '../../core/flow-types';
import { parseSegmentFile, type SegmentDefinition } from '../../core/segment-definition';

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
