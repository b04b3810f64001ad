// The send policy's keys in a flow file (on_cap, defer, quiet_hours, timezone) and `at: best_time` on a send: what
// they compile to, every mistake at its line, and flows that do not use them compiling exactly as before.
import fs from 'node:fs';
import path from 'node:path';
import { checkFlow, compileFlow, DEFAULT_BEST_TIME_WITHIN_MS } from '../../core/flow-compiler';
import { flowTimeZone, type FlowDefinition } from '../../core/flow-types';
import type { FileProblem } from '../../core/errors';

const HOUR = 3_600_000;
const options = { templateExists: (name: string) => name === 'welcome', sha256: 'abc123' };
const yaml = (...lines: string[]): string => lines.join('\n') + '\n';
const HEADER = ['id: test-flow', 'version: 1', 'priority: 10', 'trigger: { event: Signed Up }']; // lines 1-4

const compile = (source: string): FlowDefinition => compileFlow(source, 'flows/test.yaml', options);
const errors = (source: string): FileProblem[] => checkFlow(source, 'flows/test.yaml', options).problems.filter((p) => p.severity === 'error');

/** The keys a FlowDefinition had before the policy keys existed; what a flow without them must still compile to. */
const KEYS_BEFORE = ['id', 'version', 'priority', 'group', 'description', 'topic', 'trigger', 'entry', 'exit', 'requires', 'start', 'nodes', 'defaultTimezone', 'source'];
const SEND_KEYS_BEFORE = ['id', 'line', 'kind', 'template', 'data', 'next'];

describe('flow keys of the send policy', () => {
  test('on_cap, defer, quiet_hours and timezone compile to the flow\'s overrides', () => {
    const flow = compile(
      yaml(...HEADER, 'timezone: Europe/Paris', 'on_cap: defer', 'defer: { max: 36h }', 'quiet_hours: { from: "22:00", to: "07:30" }', 'steps:', '  - send: { template: welcome }'),
    );
    expect(flow).toMatchObject({ timezone: 'Europe/Paris', defaultTimezone: 'Europe/Paris', onCap: 'defer', deferMaxMs: 36 * HOUR, quietHours: { from: { hour: 22, minute: 0 }, to: { hour: 7, minute: 30 } } });
    expect(flowTimeZone(flow)).toBe('Europe/Paris');
  });

  test('quiet_hours: off is an explicit "none for this flow"; on_cap: skip needs no defer', () => {
    const flow = compile(yaml(...HEADER, 'on_cap: skip', 'quiet_hours: off', 'steps:', '  - send: { template: welcome }'));
    expect(flow.quietHours).toBeNull();
    expect(flow.onCap).toBe('skip');
    expect('deferMaxMs' in flow).toBe(false);
  });

  test('a flow that names UTC has chosen it; one that names nothing has not', () => {
    expect(flowTimeZone(compile(yaml(...HEADER, 'timezone: UTC', 'steps: []')))).toBe('UTC');
    expect(flowTimeZone(compile(yaml(...HEADER, 'steps: []')))).toBeNull();
    // A version stored before `timezone` was kept: anything but UTC was written in its file.
    expect(flowTimeZone({ defaultTimezone: 'America/Chicago' })).toBe('America/Chicago');
    expect(flowTimeZone({ defaultTimezone: 'UTC' })).toBeNull();
  });

  test('send at: best_time looks 24h ahead unless within says otherwise', () => {
    const flow = compile(yaml(...HEADER, 'steps:', '  - send: { template: welcome, at: best_time }', '  - send: { template: welcome, at: best_time, within: 6h }'));
    expect(flow.nodes['steps[0]']).toMatchObject({ kind: 'send', at: 'best_time', withinMs: DEFAULT_BEST_TIME_WITHIN_MS });
    expect(DEFAULT_BEST_TIME_WITHIN_MS).toBe(24 * HOUR);
    expect(flow.nodes['steps[1]']).toMatchObject({ kind: 'send', at: 'best_time', withinMs: 6 * HOUR });
  });

  test.each([
    ['on_cap: later', 5, 'on_cap', 'on_cap must be defer'],
    ['defer: { max: soon }', 5, 'defer.max', 'defer.max: "soon" is not a duration'],
    ['defer: {}', 5, 'defer.max', 'missing "max"'],
    ['quiet_hours: { from: "21:00", to: "21:00" }', 5, 'quiet_hours', 'both 21:00'],
    ['quiet_hours: { from: "9pm", to: "08:00" }', 5, 'quiet_hours.from', '24-hour local time'],
    ['quiet_hours: { from: "21:00", to: "08:00", days: weekdays }', 5, 'quiet_hours.days', 'unknown key "days"'],
  ])('%s is reported at its line', (line, at, where, message) => {
    const found = errors(yaml(...HEADER, line, 'steps:', '  - send: { template: welcome }'));
    expect(found).toEqual([expect.objectContaining({ file: 'flows/test.yaml', line: at, path: where, severity: 'error', message: expect.stringContaining(message) })]);
  });

  test.each([
    ['{ template: welcome, at: morning }', 'steps[0].send.at', 'at must be best_time'],
    ['{ template: welcome, within: 6h }', 'steps[0].send.within', 'within only applies with "at: best_time"'],
    ['{ template: welcome, at: best_time, within: 0h }', 'steps[0].send.within', 'a duration must be positive'],
    ['{ template: welcome, at: best_time, when: 9 }', 'steps[0].send.when', 'unknown key "when"'],
  ])('send %s is reported at its line', (send, where, message) => {
    const found = errors(yaml(...HEADER, 'steps:', `  - send: ${send}`));
    expect(found).toEqual([expect.objectContaining({ line: 6, path: where, severity: 'error', message: expect.stringContaining(message) })]);
  });

  test('defer with on_cap: skip is a warning: it would have no effect', () => {
    const result = checkFlow(yaml(...HEADER, 'on_cap: skip', 'defer: { max: 12h }', 'steps: []'), 'flows/test.yaml', options);
    expect(result.flow).toBeDefined();
    expect(result.problems).toEqual(expect.arrayContaining([expect.objectContaining({ line: 6, path: 'defer', severity: 'warning', message: expect.stringContaining('no effect') })]));
  });
});

describe('flows that do not use the new keys compile as before', () => {
  test('a flow without them has only the keys definitions always had, and plain sends', () => {
    const flow = compile(yaml(...HEADER, 'timezone: Europe/Paris', 'steps:', '  - send: { template: welcome }'));
    expect(Object.keys(flow).filter((k) => !KEYS_BEFORE.includes(k))).toEqual(['timezone']);
    const plain = compile(yaml(...HEADER, 'steps:', '  - send: { template: welcome }'));
    expect(Object.keys(plain).filter((k) => !KEYS_BEFORE.includes(k))).toEqual([]);
    expect(Object.keys(plain.nodes['steps[0]']!)).toEqual(SEND_KEYS_BEFORE);
  });

  test('the shipped flows compile to definitions without any of them', () => {
    const dir = path.resolve(__dirname, '../../flows');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'policy.yaml');
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const flow = compileFlow(fs.readFileSync(path.join(dir, file), 'utf8'), file, { templateExists: () => true, sha256: 'x' });
      expect(Object.keys(flow).filter((k) => !KEYS_BEFORE.includes(k))).toEqual([]);
      for (const node of Object.values(flow.nodes)) if (node.kind === 'send') expect(Object.keys(node).filter((k) => !SEND_KEYS_BEFORE.includes(k))).toEqual([]);
    }
  });
});
