// The experiment keys of a flow file (ab_split steps with variants and a winner rule, holdout, attribution): the
// graph they compile to, the defaults, every mistake at its line and path, and flows without them compiling as before.
import fs from 'node:fs';
import path from 'node:path';
import type { FileProblem } from '../../core/errors';
import { checkFlow, compileFlow } from '../../core/flow-compiler';
import type { FlowDefinition, FlowNode } from '../../core/flow-types';

const DAY = 86_400_000;
const TEMPLATES = new Set(['cart-reminder', 'cart-followup', 'welcome']);
const options = { templateExists: (name: string) => TEMPLATES.has(name), sha256: 'abc123' };
const yaml = (...lines: string[]): string => lines.join('\n') + '\n';
/** Lines 1-5; the goal makes `metric: conversion` measurable. */
const HEADER = ['id: cart', 'version: 1', 'priority: 10', 'trigger: { event: Product Added }', 'exit: { on_event: Order Completed }'];

const compile = (source: string): FlowDefinition => compileFlow(source, 'flows/cart.yaml', options);
const problems = (source: string): FileProblem[] => checkFlow(source, 'flows/cart.yaml', options).problems;
const errors = (source: string): FileProblem[] => problems(source).filter((p) => p.severity === 'error');

/** A two-variant split at steps[0] (line 7), each variant one send; `extra` lines go inside the ab_split map. */
const split = (...extra: string[]): string =>
  yaml(
    ...HEADER,
    'steps:', //                                                6
    '  - ab_split:', //                                         7
    ...extra.map((l) => `      ${l}`),
    '      variants:',
    '        - name: control',
    '          weight: 50',
    '          steps: [ { send: { template: cart-reminder } } ]',
    '        - name: discount',
    '          weight: 50',
    '          steps: [ { send: { template: cart-reminder, data: { discount_pct: 10 } } } ]',
  );

describe('ab_split compiles to a node whose variants branch and rejoin', () => {
  const FULL = yaml(
    'id: cart-abandonment', //                                            1
    'version: 4', //                                                      2
    'priority: 90', //                                                    3
    'holdout: 10%', //                                                    4
    'attribution: { window: 3d }', //                                     5
    'trigger: { event: Product Added }', //                               6
    'exit: { on_event: Order Completed }', //                             7
    'steps:', //                                                          8
    '  - wait: 1h', //                                                    9
    '  - ab_split:', //                                                   10
    '      experiment: cart-subject-test', //                             11
    '      variants:', //                                                 12
    '        - name: control', //                                         13
    '          weight: 50', //                                            14
    '          steps:', //                                                15
    '            - send: { template: cart-reminder }', //                 16
    '        - name: discount', //                                        17
    '          weight: 50', //                                            18
    '          steps:', //                                                19
    '            - send: { template: cart-reminder, data: { discount_pct: 10 } }', // 20
    '            - wait: 1d', //                                          21
    '      winner: { metric: conversion, min_per_variant: 500, confidence: 0.99, then: all_to_winner, max_duration: 14d }', // 22
    '  - send: { template: cart-followup }', //                           23
  );

  test('node ids follow the nesting, each variant continues at the step after the split, and the flow keeps holdout and attribution', () => {
    const flow = compile(FULL);
    const expected: Record<string, FlowNode> = {
      'steps[0]': { id: 'steps[0]', line: 9, kind: 'wait', ms: 3_600_000, next: 'steps[1]' },
      'steps[1]': {
        id: 'steps[1]',
        line: 10,
        kind: 'ab_split',
        experiment: 'cart-subject-test',
        variants: [
          { name: 'control', weight: 50, next: 'steps[1].variants[0].steps[0]' },
          { name: 'discount', weight: 50, next: 'steps[1].variants[1].steps[0]' },
        ],
        winner: { metric: 'conversion', minPerVariant: 500, confidence: 0.99, then: 'all_to_winner', maxDurationMs: 14 * DAY },
      },
      'steps[1].variants[0].steps[0]': { id: 'steps[1].variants[0].steps[0]', line: 16, kind: 'send', template: 'cart-reminder', data: {}, next: 'steps[2]' },
      'steps[1].variants[1].steps[0]': {
        id: 'steps[1].variants[1].steps[0]',
        line: 20,
        kind: 'send',
        template: 'cart-reminder',
        data: { discount_pct: 10 },
        next: 'steps[1].variants[1].steps[1]',
      },
      'steps[1].variants[1].steps[1]': { id: 'steps[1].variants[1].steps[1]', line: 21, kind: 'wait', ms: DAY, next: 'steps[2]' },
      'steps[2]': { id: 'steps[2]', line: 23, kind: 'send', template: 'cart-followup', data: {}, next: null },
    };
    expect(flow.nodes).toEqual(expected);
    // Document order: the split, then its variants' steps, then what follows.
    expect(Object.keys(flow.nodes)).toEqual(Object.keys(expected));
    expect(flow.start).toBe('steps[0]');
    expect(flow.holdout).toBe(0.1);
    expect(flow.attribution).toEqual({ windowMs: 3 * DAY });
    expect(problems(FULL)).toEqual([]);
  });

  test('winner is optional (null); a winner naming only its metric gets the documented defaults', () => {
    expect(compile(split()).nodes['steps[0]']).toMatchObject({ kind: 'ab_split', winner: null });
    expect(compile(split('winner: { metric: click }')).nodes['steps[0]']).toMatchObject({
      winner: { metric: 'click', minPerVariant: 100, confidence: 0.95, then: 'all_to_winner', maxDurationMs: 30 * DAY },
    });
  });

  test('the experiment id defaults to <flow id>/<step label>, else <flow id>/<node id>', () => {
    expect(compile(split()).nodes['steps[0]']).toMatchObject({ experiment: 'cart/steps[0]' });
    const labelled = compile(split().replace('  - ab_split:', '  - id: subject-test\n    ab_split:'));
    expect(labelled.nodes['steps[0]']).toMatchObject({ experiment: 'cart/subject-test' });
  });

  test('a variant without steps continues after the split, or ends the run when the split is last', () => {
    const source = (after: string[]) =>
      yaml(
        ...HEADER,
        'steps:',
        '  - ab_split:',
        '      variants:',
        '        - { name: holdback, weight: 20 }',
        '        - { name: email, weight: 80, steps: [ { send: { template: welcome } } ] }',
        '      winner: { metric: conversion }',
        ...after,
      );
    expect(compile(source(['  - wait: 2d'])).nodes['steps[0]']).toMatchObject({
      variants: [
        { name: 'holdback', weight: 20, next: 'steps[1]' },
        { name: 'email', weight: 80, next: 'steps[0].variants[1].steps[0]' },
      ],
    });
    const last = compile(source([]));
    expect(last.nodes['steps[0]']).toMatchObject({ variants: [{ next: null }, { next: 'steps[0].variants[1].steps[0]' }] });
    expect(last.nodes['steps[0].variants[1].steps[0]']).toMatchObject({ next: null });
  });

  test('three variants, percent weights and fractions that add up to 100; nested splits get nested ids', () => {
    const flow = compile(
      yaml(
        ...HEADER,
        'steps:',
        '  - ab_split:',
        '      variants:',
        '        - { name: a, weight: 33.3, steps: [ { send: { template: welcome } } ] }',
        '        - { name: b, weight: "33.3%", steps: [ { send: { template: welcome } } ] }',
        '        - name: c',
        '          weight: 33.4%',
        '          steps:',
        '            - ab_split:',
        '                variants:',
        '                  - { name: x, weight: 10, steps: [ { send: { template: welcome } } ] }',
        '                  - { name: y, weight: 90 }',
      ),
    );
    expect(flow.nodes['steps[0]']).toMatchObject({
      variants: [
        { name: 'a', weight: 33.3 },
        { name: 'b', weight: 33.3 },
        { name: 'c', weight: 33.4, next: 'steps[0].variants[2].steps[0]' },
      ],
    });
    expect(flow.nodes['steps[0].variants[2].steps[0]']).toMatchObject({
      kind: 'ab_split',
      experiment: 'cart/steps[0].variants[2].steps[0]',
      variants: [{ name: 'x', next: 'steps[0].variants[2].steps[0].variants[0].steps[0]' }, { name: 'y', next: null }],
    });
  });

  test('goto works into and out of variants, and a loop through a split still needs a wait', () => {
    const looping = yaml(
      ...HEADER,
      'steps:', //                                                       6
      '  - id: top', //                                                  7
      '    send: { template: welcome }', //                              8
      '  - ab_split:', //                                                9
      '      variants:', //                                              10
      '        - { name: a, weight: 50, steps: [ { goto: top } ] }', //  11
      '        - { name: b, weight: 50, steps: [ { exit: done } ] }', // 12
    );
    expect(errors(looping)).toEqual([expect.objectContaining({ line: 11, path: 'steps[1].ab_split.variants[0].steps[0]', message: expect.stringContaining('loop without a wait') })]);
    const waiting = compile(looping.replace('[ { goto: top } ]', '[ { wait: 7d }, { goto: top } ]'));
    expect(waiting.nodes['steps[1].variants[0].steps[0]']).toMatchObject({ kind: 'wait', next: 'steps[0]' });
    expect(waiting.nodes['steps[1]']).toMatchObject({ variants: [{ next: 'steps[1].variants[0].steps[0]' }, { next: 'steps[1].variants[1].steps[0]' }] });
  });

  test('a step after a split whose every variant exits is unreachable', () => {
    const found = errors(
      yaml(
        ...HEADER,
        'steps:', //                                                         6
        '  - ab_split:', //                                                  7
        '      variants:', //                                                8
        '        - { name: a, weight: 50, steps: [ { exit: a } ] }', //      9
        '        - { name: b, weight: 50, steps: [ { exit: b } ] }', //      10
        '  - send: { template: welcome }', //                                11
      ),
    );
    expect(found).toEqual([expect.objectContaining({ line: 11, path: 'steps[1]', message: expect.stringContaining('every branch of the step before (line 7) ends in exit or goto') })]);
  });

  test('holdout takes percentages with decimals; attribution alone keeps the key', () => {
    const flow = compile(yaml(...HEADER, 'holdout: 2.5%', 'steps: [ { send: { template: welcome } } ]'));
    expect(flow.holdout).toBe(0.025);
    expect('attribution' in flow).toBe(false);
    const attributed = compile(yaml(...HEADER, 'attribution: { window: 12h }', 'steps: [ { send: { template: welcome } } ]'));
    expect(attributed.attribution).toEqual({ windowMs: 12 * 3_600_000 });
    expect('holdout' in attributed).toBe(false);
  });
});

describe('mistakes in the experiment keys are errors at their line and path, with the fix', () => {
  test.each([
    // [what, source, line, path, message]
    ['weights that do not sum to 100', split().replace('weight: 50\n          steps: [ { send: { template: cart-reminder } } ]', 'weight: 40\n          steps: [ { send: { template: cart-reminder } } ]'), 8, 'steps[0].ab_split.variants', 'variant weights sum to 90, not 100'],
    ['weights over 100', split().replace(/weight: 50/g, 'weight: 60'), 8, 'steps[0].ab_split.variants', 'sum to 120, not 100'],
    ['a weight of 0', split().replace('weight: 50', 'weight: 0'), 10, 'steps[0].ab_split.variants[0].weight', 'weight must be more than 0, got 0'],
    ['a negative weight', split().replace('weight: 50', 'weight: -10'), 10, 'steps[0].ab_split.variants[0].weight', 'weight must be more than 0, got -10'],
    ['a weight that is no number', split().replace('weight: 50', 'weight: half'), 10, 'steps[0].ab_split.variants[0].weight', 'weight must be a percentage of customers such as 50 or "50%", got "half"'],
    ['a missing weight', split().replace('          weight: 50\n', ''), 9, 'steps[0].ab_split.variants[0].weight', 'missing "weight"'],
    ['a duplicate variant name', split().replace('name: discount', 'name: control'), 12, 'steps[0].ab_split.variants[1].name', 'duplicate variant name "control": already used at line 9'],
    ['a variant name with capitals', split().replace('name: discount', 'name: Discount 10'), 12, 'steps[0].ab_split.variants[1].name', 'variant name "Discount 10" must be'],
    ['a variant name with parentheses', split().replace('name: discount', 'name: "(holdout)"'), 12, 'steps[0].ab_split.variants[1].name', 'variant name "(holdout)" must be'],
    ['an unknown key in a variant', split().replace('name: discount', 'name: discount\n          subject: Hi'), 13, 'steps[0].ab_split.variants[1].subject', 'unknown key "subject" in a variant'],
    ['an unknown key in the split', split('holdout: 10%'), 8, 'steps[0].ab_split.holdout', 'unknown key "holdout" in ab_split'],
    ['winner on opens', split('winner: { metric: open }'), 8, 'steps[0].ab_split.winner.metric', 'opens are not offered'],
    ['winner on an unknown metric', split('winner: { metric: clicks }'), 8, 'steps[0].ab_split.winner.metric', 'metric must be conversion (the flow\'s goal, exit.on_event) or click, got "clicks" (did you mean "click"?)'],
    ['winner without a metric', split('winner: { confidence: 0.9 }'), 8, 'steps[0].ab_split.winner.metric', 'missing "metric"'],
    ['confidence of 1', split('winner: { metric: click, confidence: 1 }'), 8, 'steps[0].ab_split.winner.confidence', 'confidence must be a number between 0.5 and 1 (exclusive), e.g. 0.95, got 1'],
    ['confidence of 0.5', split('winner: { metric: click, confidence: 0.5 }'), 8, 'steps[0].ab_split.winner.confidence', 'got 0.5'],
    ['confidence as a percentage', split('winner: { metric: click, confidence: 95 }'), 8, 'steps[0].ab_split.winner.confidence', 'got 95 (write 0.95)'],
    ['min_per_variant of 0', split('winner: { metric: click, min_per_variant: 0 }'), 8, 'steps[0].ab_split.winner.min_per_variant', 'min_per_variant must be a positive whole number, got 0'],
    ['an unknown then', split('winner: { metric: click, then: keep_running }'), 8, 'steps[0].ab_split.winner.then', 'then must be all_to_winner'],
    ['a bad max_duration', split('winner: { metric: click, max_duration: 1 month }'), 8, 'steps[0].ab_split.winner.max_duration', 'max_duration: "1 month" is not a duration'],
    ['an unknown key in winner', split('winner: { metric: click, metric_window: 2d }'), 8, 'steps[0].ab_split.winner.metric_window', 'unknown key "metric_window" in winner'],
    ['an experiment id with capitals', split('experiment: Cart Test'), 8, 'steps[0].ab_split.experiment', 'experiment "Cart Test" must be'],
    ['an experiment id with an empty part', split('experiment: cart//test'), 8, 'steps[0].ab_split.experiment', 'in parts joined by "/"'],
  ])('%s', (_what, source, line, where, message) => {
    expect(errors(source)).toEqual([expect.objectContaining({ file: 'flows/cart.yaml', line, path: where, severity: 'error', message: expect.stringContaining(message) })]);
  });

  test('fewer than two variants, and variants that are not a list', () => {
    const one = yaml(...HEADER, 'steps:', '  - ab_split:', '      variants:', '        - { name: only, weight: 100, steps: [ { send: { template: welcome } } ] }');
    expect(errors(one)).toEqual([expect.objectContaining({ line: 8, path: 'steps[0].ab_split.variants', message: expect.stringContaining('at least two variants, found 1') })]);
    const map = yaml(...HEADER, 'steps:', '  - ab_split:', '      variants: { a: 50, b: 50 }');
    expect(errors(map)).toEqual([expect.objectContaining({ line: 8, path: 'steps[0].ab_split.variants', message: 'variants must be a list of { name, weight, steps }, got a map' })]);
    const none = yaml(...HEADER, 'steps:', '  - ab_split: { experiment: x }');
    expect(errors(none)).toEqual([expect.objectContaining({ line: 7, path: 'steps[0].ab_split.variants', message: expect.stringContaining('missing "variants"') })]);
  });

  test('winner on clicks when a variant sends nothing: the flow cannot measure its clicks', () => {
    const source = (goal: boolean) =>
      yaml(
        'id: cart', //                                                   1
        'version: 1', //                                                 2
        'priority: 10', //                                               3
        'trigger: { event: Product Added }', //                          4
        goal ? 'exit: { on_event: Order Completed }' : 'group: marketing', // 5
        'steps:', //                                                     6
        '  - ab_split:', //                                              7
        '      variants:', //                                            8
        '        - name: email', //                                      9
        '          weight: 50', //                                       10
        '          steps:', //                                           11
        '            - split:', //                                       12
        '                when: { profile.vip: true }', //                13
        '                then: [ { send: { template: welcome } } ]', //  14
        '        - name: nothing', //                                    15
        '          weight: 50', //                                       16
        '          steps: [ { wait: 1d } ]', //                          17
        '      winner: { metric: click }', //                            18
      );
    const [withGoal] = errors(source(true));
    expect(errors(source(true))).toHaveLength(1);
    expect(withGoal).toMatchObject({ line: 18, path: 'steps[0].ab_split.winner.metric' });
    // The send in a branch of the first variant counts; the second has none.
    expect(withGoal!.message).toBe(
      'metric: click cannot be measured: variant "nothing" (line 15) has no send step, so it has no clicks to compare; use metric: conversion (the flow\'s goal), or give the variant a send',
    );
    expect(errors(source(false))[0]!.message).toContain('add a goal ("exit: { on_event: Order Completed }") and use metric: conversion');
    expect(errors(source(true).replace('metric: click', 'metric: conversion'))).toEqual([]);
  });

  test('winner on conversions in a flow without a goal event', () => {
    const source = yaml('id: cart', 'version: 1', 'priority: 10', 'trigger: { event: Product Added }', 'steps:', '  - ab_split:', '      variants:',
      '        - { name: a, weight: 50, steps: [ { send: { template: welcome } } ] }',
      '        - { name: b, weight: 50, steps: [ { send: { template: welcome } } ] }',
      '      winner:',
      '        metric: conversion', //                                                        11
    );
    expect(errors(source)).toEqual([
      expect.objectContaining({ line: 11, path: 'steps[0].ab_split.winner.metric', message: expect.stringContaining('metric: conversion counts the flow\'s goal event, and this flow has none: add "exit: { on_event: Order Completed }"') }),
    ]);
    // A goal that could not be read is reported once, not again as a missing goal.
    const badGoal = source.replace('steps:', 'exit: { on_event: [ 5 ] }\nsteps:');
    expect(errors(badGoal).map((p) => p.path)).toEqual(['exit.on_event[0]']);
  });

  test('two splits of one flow cannot share an experiment id, written or defaulted', () => {
    const variants = ['      variants:', '        - { name: a, weight: 50, steps: [ { send: { template: welcome } } ] }', '        - { name: b, weight: 50, steps: [ { send: { template: welcome } } ] }'];
    const others = variants.map((line) => line.replace('name: a,', 'name: c,').replace('name: b,', 'name: d,'));
    const written = yaml(...HEADER, 'steps:', '  - ab_split:', '      experiment: subject', ...variants, '  - wait: 1d', '  - ab_split:', '      experiment: subject', ...others);
    expect(errors(written)).toEqual([
      expect.objectContaining({ line: 14, path: 'steps[2].ab_split.experiment', message: expect.stringContaining('duplicate experiment "subject": the ab_split at line 7 (steps[0].ab_split) already uses it') }),
    ]);
    const defaulted = yaml(...HEADER, 'steps:', '  - id: subject', '    ab_split:', ...variants, '  - ab_split:', '      experiment: cart/subject', ...others);
    expect(errors(defaulted)).toEqual([expect.objectContaining({ line: 13, path: 'steps[1].ab_split.experiment', message: expect.stringContaining('duplicate experiment "cart/subject"') })]);
  });

  test('two splits of one flow may not share a variant name: the report counters are kept per variant name', () => {
    const variants = ['      variants:', '        - { name: a, weight: 50, steps: [ { send: { template: welcome } } ] }', '        - { name: b, weight: 50, steps: [ { send: { template: welcome } } ] }'];
    const written = yaml(...HEADER, 'steps:', '  - ab_split:', '      experiment: subject', ...variants, '  - wait: 1d', '  - ab_split:', '      experiment: layout', ...variants);
    expect(errors(written)).toEqual([
      expect.objectContaining({ line: 16, path: 'steps[2].ab_split.variants[0].name', message: expect.stringContaining('variant name "a" is already the name of a variant (line 10) of another ab_split') }),
      expect.objectContaining({ line: 17, path: 'steps[2].ab_split.variants[1].name', message: expect.stringContaining('give this one its own, e.g. "b-2"') }),
    ]);
  });

  test.each([
    ['holdout: 0%', 'holdout must be more than 0% and less than 100%, got 0%: remove the key for no holdout'],
    ['holdout: 100%', 'got 100%: a flow that holds out everyone sends nothing'],
    ['holdout: 0.1', 'holdout is the percentage of entrants who are sent nothing, e.g. "holdout: 10%", got 0.1 (a bare number is ambiguous: write it with "%")'],
    ['holdout: ten percent', 'got "ten percent"'],
    ['attribution: { window: 10m }', 'attribution.window must be between 1h and 30d, got 10m'],
    ['attribution: { window: 60d }', 'attribution.window must be between 1h and 30d, got 60d'],
    ['attribution: { window: 5 days }', 'attribution.window: "5 days" is not a duration'],
    ['attribution: { window: 5d, on: click }', 'unknown key "on" in attribution'],
    ['attribution: {}', 'missing "window"'],
    ['attribution: 5d', 'attribution must be a map'],
  ])('%s is reported at line 6', (line, message) => {
    const found = errors(yaml(...HEADER, line, 'steps: [ { send: { template: welcome } } ]'));
    expect(found).toEqual([expect.objectContaining({ line: 6, path: expect.stringMatching(/^(holdout|attribution)/), message: expect.stringContaining(message) })]);
  });

  test('attribution in a flow without a goal is a warning: there is nothing to credit', () => {
    const result = checkFlow(yaml('id: x', 'version: 1', 'priority: 1', 'trigger: { event: A }', 'attribution: { window: 2d }', 'steps: []'), 'f.yaml', options);
    expect(result.flow?.attribution).toEqual({ windowMs: 2 * DAY });
    expect(result.problems).toEqual([
      expect.objectContaining({ severity: 'warning', line: 5, path: 'attribution', message: expect.stringContaining('attribution has no effect') }),
      expect.objectContaining({ severity: 'warning', path: 'steps' }),
    ]);
  });
});

describe('flows without the experiment keys compile as before', () => {
  test('the shipped and fixture flows have no holdout, attribution or ab_split node', () => {
    const dirs = [path.resolve(__dirname, '../../flows'), path.resolve(__dirname, '../fixtures/flows-valid')];
    let compiled = 0;
    for (const dir of dirs) {
      for (const file of fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'policy.yaml')) {
        const flow = compileFlow(fs.readFileSync(path.join(dir, file), 'utf8'), file, { templateExists: () => true, sha256: 'x' });
        expect({ file, holdout: 'holdout' in flow, attribution: 'attribution' in flow }).toEqual({ file, holdout: false, attribution: false });
        expect(Object.values(flow.nodes).filter((n) => n.kind === 'ab_split')).toEqual([]);
        compiled++;
      }
    }
    expect(compiled).toBeGreaterThan(3);
  });
});
