// Flow files compile to the node graph the workflow walks, and every mistake is reported with its line and path.
import { InvalidFileError } from '../../core/errors';
import type { FileProblem } from '../../core/errors';
import { checkFlow, compileFlow, STEP_KINDS } from '../../core/flow-compiler';
import type { FlowDefinition } from '../../core/flow-types';

const TEMPLATES = new Set(['cart-reminder', 'cart-discount', 'cart-reviews', 'welcome']);
const options = { templateExists: (name: string) => TEMPLATES.has(name), sha256: 'abc123' };

/** Joins lines so that the line numbers the tests assert are the array index + 1. */
const yaml = (...lines: string[]): string => lines.join('\n') + '\n';

const HEADER = ['id: test-flow', 'version: 1', 'priority: 10', 'trigger: { event: Signed Up }']; // lines 1-4

function check(source: string): ReturnType<typeof checkFlow> {
  return checkFlow(source, 'flows/test.yaml', options);
}

function errors(source: string): FileProblem[] {
  return check(source).problems.filter((p) => p.severity === 'error');
}

/** The single error a source produces; fails the test if there is not exactly one. */
function onlyError(source: string): FileProblem {
  const found = errors(source);
  expect(found).toHaveLength(1);
  return found[0]!;
}

describe('compileFlow: valid flows', () => {
  const CART = yaml(
    'id: cart-abandonment', //                                      1
    'version: 3', //                                                2
    'priority: 90', //                                              3
    'group: marketing', //                                          4
    'description: Remind about the cart', //                        5
    'timezone: America/New_York', //                                6
    'trigger:', //                                                  7
    '  event: Product Added', //                                    8
    '  where: { event.properties.value: { gte: 10 } }', //          9
    'entry:', //                                                    10
    '  when: { consent.email_marketing: true }', //                 11
    '  reentry: { cooldown: 7d }', //                               12
    '  on_conflict: queue', //                                      13
    'exit:', //                                                     14
    '  on_event: Order Completed', //                               15
    'steps:', //                                                    16
    '  - wait: 1h', //                                              17
    '  - id: remind', //                                            18
    '    send: { template: cart-reminder, data: { discount_pct: 10 } }', // 19
    '  - wait: { until: "09:00" }', //                              20
    '  - split:', //                                                21
    '      when: { profile.behavior_score: { gte: 50 } }', //       22
    '      then: [ { send: { template: cart-discount } } ]', //     23
    '      else:', //                                               24
    '        - send: { template: cart-reviews }', //                25
    '        - goto: remind', //                                    26
    '  - wait_for:', //                                             27
    '      event: Product Added', //                                28
    '      where: { event.properties.sku: { exists: true } }', //   29
    '      timeout: 2d', //                                         30
    '      on_timeout:', //                                         31
    '        - exit: gave up', //                                   32
    '  - update_profile: { set: { vip: true }, add_tags: [cart], remove_tags: [browsing] }', // 33
  );

  test('compiles to the expected node graph, with branches and goto compiled away', () => {
    const flow = compileFlow(CART, 'flows/cart.yaml', options);
    const expected: FlowDefinition = {
      id: 'cart-abandonment',
      version: 3,
      priority: 90,
      group: 'marketing',
      description: 'Remind about the cart',
      topic: null,
      trigger: { kind: 'event', event: 'Product Added', where: { 'event.properties.value': { gte: 10 } } },
      entry: { when: { 'consent.email_marketing': true }, reentry: { kind: 'cooldown', ms: 7 * 86_400_000 }, onConflict: 'queue' },
      exit: { onEvents: [{ event: 'Order Completed' }] },
      start: 'steps[0]',
      nodes: {
        'steps[0]': { id: 'steps[0]', line: 17, kind: 'wait', ms: 3_600_000, next: 'steps[1]' },
        'steps[1]': { id: 'steps[1]', line: 18, kind: 'send', template: 'cart-reminder', data: { discount_pct: 10 }, next: 'steps[2]' },
        'steps[2]': { id: 'steps[2]', line: 20, kind: 'wait_until', hour: 9, minute: 0, next: 'steps[3]' },
        'steps[3]': {
          id: 'steps[3]',
          line: 21,
          kind: 'split',
          when: { 'profile.behavior_score': { gte: 50 } },
          then: 'steps[3].then[0]',
          else: 'steps[3].else[0]',
        },
        'steps[3].then[0]': { id: 'steps[3].then[0]', line: 23, kind: 'send', template: 'cart-discount', data: {}, next: 'steps[4]' },
        // The goto after it is gone: this send points straight back at the labelled step.
        'steps[3].else[0]': { id: 'steps[3].else[0]', line: 25, kind: 'send', template: 'cart-reviews', data: {}, next: 'steps[1]' },
        'steps[4]': {
          id: 'steps[4]',
          line: 27,
          kind: 'wait_for',
          match: { event: 'Product Added', where: { 'event.properties.sku': { exists: true } } },
          timeoutMs: 2 * 86_400_000,
          onEvent: 'steps[5]',
          onTimeout: 'steps[4].on_timeout[0]',
        },
        'steps[4].on_timeout[0]': { id: 'steps[4].on_timeout[0]', line: 32, kind: 'exit', reason: 'gave up' },
        'steps[5]': {
          id: 'steps[5]',
          line: 33,
          kind: 'update_profile',
          set: { vip: true },
          addTags: ['cart'],
          removeTags: ['browsing'],
          next: null,
        },
      },
      defaultTimezone: 'America/New_York',
      // The file names its zone, so it is kept as chosen (flowTimeZone); a file without `timezone:` has no key.
      timezone: 'America/New_York',
      source: { file: 'flows/cart.yaml', sha256: 'abc123' },
    };
    expect(flow).toEqual(expected);
    // Document order, so stored JSON and diagrams read top to bottom.
    expect(Object.keys(flow.nodes)).toEqual(Object.keys(expected.nodes));
    expect(checkFlow(CART, 'flows/cart.yaml', options).problems).toEqual([]);
  });

  test('applies defaults for group, entry, exit and time zone', () => {
    const flow = compileFlow(yaml(...HEADER, 'steps:', '  - send: { template: welcome }'), 'f.yaml', options);
    expect(flow.group).toBe('default');
    expect(flow.entry).toEqual({ reentry: { kind: 'always' }, onConflict: 'suppress' });
    expect(flow.exit).toEqual({ onEvents: [] });
    expect(flow.defaultTimezone).toBe('UTC');
    expect(flow.description).toBeUndefined();
    expect(flow.trigger).toEqual({ kind: 'event', event: 'Signed Up' });
  });

  test('event_count and inactivity triggers', () => {
    const counted = compileFlow(
      yaml(
        'id: browse',
        'version: 1',
        'priority: 1',
        'trigger: { event: Product Viewed, count: { at_least: 3, within: 7d, same: properties.category } }',
        'steps: [ { send: { template: welcome } } ]',
      ),
      'f.yaml',
      options,
    );
    expect(counted.trigger).toEqual({
      kind: 'event_count',
      event: 'Product Viewed',
      atLeast: 3,
      withinMs: 7 * 86_400_000,
      sameProperty: 'properties.category',
    });
    const inactive = compileFlow(
      yaml('id: winback', 'version: 1', 'priority: 1', 'trigger: { inactivity: { event: Order Completed, for: 60d } }', 'steps: [ { send: { template: welcome } } ]'),
      'f.yaml',
      options,
    );
    expect(inactive.trigger).toEqual({ kind: 'inactivity', event: 'Order Completed', forMs: 60 * 86_400_000 });
  });

  test('segment: in a trigger and in wait_for listens for the Segment Entered event of that segment, which must exist', () => {
    const segmentIds = new Set(['lapsed-customers', 'at-risk']);
    const flow = compileFlow(
      yaml(
        'id: lapse',
        'version: 1',
        'priority: 1',
        'trigger: { segment: lapsed-customers }',
        'steps:',
        '  - wait_for: { segment: at-risk, timeout: 30d, on_timeout: [ { exit: never at risk } ] }',
        '  - send: { template: welcome }',
      ),
      'f.yaml',
      { ...options, segmentIds },
    );
    expect(flow.trigger).toEqual({ kind: 'event', event: 'Segment Entered', where: { 'event.properties.segment_id': 'lapsed-customers' } });
    expect(flow.nodes['steps[0]']).toMatchObject({ kind: 'wait_for', match: { event: 'Segment Entered', where: { 'event.properties.segment_id': 'at-risk' } }, timeoutMs: 30 * 86_400_000 });
    const unknown = checkFlow(yaml('id: lapse', 'version: 1', 'priority: 1', 'trigger: { segment: vips }', 'steps: [ { send: { template: welcome } } ]'), 'f.yaml', { ...options, segmentIds });
    expect(unknown.problems.filter((p) => p.severity === 'error')).toEqual([
      expect.objectContaining({ line: 4, path: 'trigger.segment', message: expect.stringContaining('no segment "vips": create segments/vips.yaml or use one of at-risk, lapsed-customers') }),
    ]);
    const mixed = checkFlow(yaml('id: lapse', 'version: 1', 'priority: 1', 'trigger: { segment: at-risk, event: Signed Up }', 'steps: [ { send: { template: welcome } } ]'), 'f.yaml', { ...options, segmentIds });
    expect(mixed.problems.map((p) => p.message)).toContain('a segment trigger stands alone: remove "event" or drop "segment"');
  });

  test('reentry once, exit events as names and matchers, exit step forms', () => {
    const flow = compileFlow(
      yaml(
        ...HEADER,
        'entry: { reentry: once }',
        'exit:',
        '  on_event:',
        '    - Order Completed',
        '    - { event: Unsubscribed, where: { event.properties.list: marketing } }',
        'steps:',
        '  - split:',
        '      when: { profile.orders_count: 0 }',
        '      then: [ { exit: {} } ]',
        '      else: [ { exit: { reason: has ordered } } ]',
      ),
      'f.yaml',
      options,
    );
    expect(flow.entry.reentry).toEqual({ kind: 'once' });
    expect(flow.exit.onEvents).toEqual([
      { event: 'Order Completed' },
      { event: 'Unsubscribed', where: { 'event.properties.list': 'marketing' } },
    ]);
    expect(flow.nodes['steps[0].then[0]']).toEqual({ id: 'steps[0].then[0]', line: 13, kind: 'exit', reason: 'exit step' });
    expect(flow.nodes['steps[0].else[0]']).toEqual({ id: 'steps[0].else[0]', line: 14, kind: 'exit', reason: 'has ordered' });

    // `exit:` with nothing after it is an exit too, not a missing value, so the step after it is dead code.
    const bare = yaml(...HEADER, 'steps:', '  - wait: 1h', '  - exit:', '  - send: { template: welcome }');
    expect(errors(bare)).toEqual([expect.objectContaining({ line: 8, path: 'steps[2]' })]);
    expect(compileFlow(bare.replace(/ {2}- send.*\n$/, ''), 'f.yaml', options).nodes['steps[1]']).toMatchObject({ kind: 'exit' });
  });

  test('empty branches continue after the step; a goto first in a list starts at its target', () => {
    const flow = compileFlow(
      yaml(
        ...HEADER,
        'steps:',
        '  - goto: main', //                                           6
        '  - id: main', //                                             7
        '    wait_for: { event: Clicked, timeout: 1d }', //            8
        '  - split:', //                                               9
        '      when: { profile.vip: true }', //                        10
        '      then:', //                                              11
        '        - goto: done', //                                     12
        '  - send: { template: welcome }', //                          13
        '  - id: done', //                                             14
        '    exit: finished', //                                       15
      ),
      'f.yaml',
      options,
    );
    expect(flow.start).toBe('steps[1]');
    expect(flow.nodes['steps[0]']).toBeUndefined();
    expect(flow.nodes['steps[1]']).toMatchObject({ kind: 'wait_for', onEvent: 'steps[2]', onTimeout: 'steps[2]', timeoutMs: 86_400_000 });
    expect(flow.nodes['steps[2]']).toMatchObject({ kind: 'split', then: 'steps[4]', else: 'steps[3]' });
    expect(flow.nodes['steps[3]']).toMatchObject({ kind: 'send', next: 'steps[4]' });
    expect(flow.nodes['steps[2].then[0]']).toBeUndefined();
  });

  test('a loop that waits is fine; an empty step list is only a warning', () => {
    const looping = check(
      yaml(...HEADER, 'steps:', '  - id: again', '    send: { template: welcome }', '  - wait: 1d', '  - goto: again'),
    );
    expect(looping.problems).toEqual([]);
    expect(looping.flow?.nodes['steps[1]']).toMatchObject({ kind: 'wait', next: 'steps[0]' });

    const empty = check(yaml(...HEADER, 'steps: []'));
    expect(empty.flow?.start).toBeNull();
    expect(empty.problems).toEqual([
      expect.objectContaining({ severity: 'warning', line: 5, path: 'steps', message: expect.stringContaining('no steps') }),
    ]);
  });

  test('aliases resolve like the values they point at', () => {
    const flow = compileFlow(
      yaml(...HEADER, 'steps:', '  - send: { template: welcome, data: &d { pct: 5 } }', '  - send: { template: welcome, data: *d }'),
      'f.yaml',
      options,
    );
    expect(flow.nodes['steps[1]']).toMatchObject({ data: { pct: 5 } });
  });
});

describe('compileFlow: problems name the line and the path', () => {
  test('unknown step kind lists the known kinds', () => {
    const p = onlyError(yaml(...HEADER, 'steps:', '  - wait: 1h', '  - sned: { template: welcome }'));
    expect(p).toMatchObject({ file: 'flows/test.yaml', line: 7, column: 5, path: 'steps[1].sned', severity: 'error' });
    expect(p.message).toContain('unknown step kind "sned"');
    expect(p.message).toContain('did you mean "send"');
    for (const kind of STEP_KINDS) expect(p.message).toContain(kind);
  });

  test('a send whose template does not exist', () => {
    const p = onlyError(yaml(...HEADER, 'steps:', '  - wait: 1h', '  - send:', '      template: nope'));
    expect(p).toMatchObject({ line: 8, column: 17, path: 'steps[1].send.template' });
    expect(p.message).toBe('template "nope" does not exist: create templates/nope.mjml or fix the name');
  });

  test('a template name that would escape the templates directory is refused before any lookup', () => {
    const lookups: string[] = [];
    const result = checkFlow(yaml(...HEADER, 'steps:', '  - send: { template: ../secrets }'), 'f.yaml', {
      sha256: 'x',
      templateExists: (name) => {
        lookups.push(name);
        return true;
      },
    });
    expect(result.problems).toEqual([expect.objectContaining({ line: 6, path: 'steps[0].send.template' })]);
    expect(lookups).toEqual([]);
  });

  test('a bad duration uses the duration parser message', () => {
    const p = onlyError(yaml(...HEADER, 'steps:', '  - send: { template: welcome }', '  - wait: 3 days'));
    expect(p).toMatchObject({ line: 7, column: 11, path: 'steps[1].wait' });
    expect(p.message).toBe('wait: "3 days" is not a duration: write a number followed by a unit (ms, s, m, h, d, w), e.g. "1h30m" or "7d"');
  });

  test('bad durations in wait_for timeouts, cooldowns and triggers', () => {
    const found = errors(
      yaml(
        'id: x', //                                                                 1
        'version: 1', //                                                            2
        'priority: 1', //                                                           3
        'trigger: { event: A, count: { at_least: 2, within: soon } }', //           4
        'entry: { reentry: { cooldown: 0d } }', //                                  5
        'steps:', //                                                                6
        '  - wait_for: { event: B, timeout: 2 }', //                                7
      ),
    );
    expect(found.map((p) => [p.line, p.path])).toEqual([
      [4, 'trigger.count.within'],
      [5, 'entry.reentry.cooldown'],
      [7, 'steps[0].wait_for.timeout'],
    ]);
    expect(found[1]!.message).toContain('zero');
  });

  test('a step after exit is unreachable', () => {
    const p = onlyError(yaml(...HEADER, 'steps:', '  - send: { template: welcome }', '  - exit: done', '  - send: { template: welcome }', '  - wait: 1h'));
    // Only the first step of the dead run is reported; the rest follow from it.
    expect(p).toMatchObject({ line: 8, column: 5, path: 'steps[2]' });
    expect(p.message).toContain('unreachable step: it follows "exit" (line 7)');
  });

  test('a step after goto is unreachable unless a goto targets it', () => {
    const p = onlyError(
      yaml(...HEADER, 'steps:', '  - id: top', '    wait: 1d', '  - split:', '      when: { profile.vip: true }', '      then: [ { goto: top } ]', '      else: [ { exit: no } ]', '  - send: { template: welcome }'),
    );
    expect(p).toMatchObject({ line: 12, path: 'steps[2]' });
    expect(p.message).toContain('every branch of the step before (line 8) ends in exit or goto');

    expect(errors(yaml(...HEADER, 'steps:', '  - goto: later', '  - send: { template: welcome }', '  - id: later', '    wait: 1h'))).toEqual([
      expect.objectContaining({ line: 7, path: 'steps[1]', message: expect.stringContaining('it follows "goto" (line 6)') }),
    ]);
  });

  test('a goto to a label that does not exist', () => {
    const p = onlyError(yaml(...HEADER, 'steps:', '  - id: start-here', '    wait: 1h', '  - goto: start_here'));
    expect(p).toMatchObject({ line: 8, column: 11, path: 'steps[1].goto' });
    expect(p.message).toContain('no step has "id: start_here"');
    expect(p.message).toContain('did you mean "start-here"');
  });

  test('a loop with no waiting step, blamed on the goto', () => {
    const p = onlyError(yaml(...HEADER, 'steps:', '  - wait: 1h', '  - id: again', '    send: { template: welcome }', '  - goto: again'));
    expect(p).toMatchObject({ line: 9, column: 5, path: 'steps[2]' });
    expect(p.message).toContain('loop without a wait: goto "again" jumps back to line 7');
  });

  test('a loop that waits on one branch only is still a loop without wait', () => {
    const p = onlyError(
      yaml(
        ...HEADER,
        'steps:',
        '  - id: again', //                                         6
        '    send: { template: welcome }', //                       7
        '  - split:', //                                            8
        '      when: { profile.vip: true }', //                     9
        '      then: [ { wait: 1d } ]', //                          10
        '  - goto: again', //                                       11
      ),
    );
    expect(p).toMatchObject({ line: 11, path: 'steps[2]' });
    expect(p.message).toContain('lines 6, 8, 11');
  });

  test('gotos that only jump to each other are a loop without wait', () => {
    const p = onlyError(yaml(...HEADER, 'steps:', '  - wait: 1h', '  - id: a', '    goto: b', '  - id: b', '    goto: a'));
    expect(p.message).toContain('loop without a wait');
    expect(p.line).toBe(7);
  });

  test('requires (the flow\'s reason) compiles as a condition, and a bad one is reported at its line', () => {
    const flow = compileFlow(yaml(...HEADER, 'requires: { profile.cart: { exists: true }, not: { profile.cart: { size: 0 } } }', 'steps:', '  - send: { template: welcome }'), 'f.yaml', options);
    expect(flow.requires).toEqual({ 'profile.cart': { exists: true }, not: { 'profile.cart': { size: 0 } } });
    expect(compileFlow(yaml(...HEADER, 'steps:', '  - send: { template: welcome }'), 'f.yaml', options).requires).toBeUndefined();
    const p = onlyError(yaml(...HEADER, 'requires:', '  profile.cart: { nonempty: true }', 'steps:', '  - send: { template: welcome }'));
    expect(p).toMatchObject({ line: 6, path: 'requires.profile.cart.nonempty' });
    expect(p.message).toContain('unknown operator "nonempty"');
  });

  test('an unknown condition operator points at the operator key', () => {
    const p = onlyError(
      yaml(...HEADER, 'steps:', '  - wait: 1h', '  - split:', '      when:', '        profile.score:', '          foo: 50', '      then: [ { send: { template: welcome } } ]'),
    );
    expect(p).toMatchObject({ line: 10, column: 11, path: 'steps[1].split.when.profile.score.foo' });
    expect(p.message).toContain('unknown operator "foo" on profile.score');
    expect(p.message).toContain('gte');
  });

  test('condition errors inside combinators and in entry/trigger/exit filters', () => {
    const found = errors(
      yaml(
        'id: x', //                                                                       1
        'version: 1', //                                                                  2
        'priority: 1', //                                                                 3
        'trigger: { event: A, where: { profile.vip: true } }', //                         4
        'entry:', //                                                                      5
        '  when:', //                                                                     6
        '    any:', //                                                                    7
        '      - { consent.email_marketing: true }', //                                   8
        '      - { customer.vip: true }', //                                              9
        'exit: { on_event: [ { event: B, where: { $where: "1" } } ] }', //                10
        'steps: [ { wait: 1h } ]', //                                                     11
      ),
    );
    expect(found.map((p) => [p.line, p.path])).toEqual([
      [4, 'trigger.where.profile.vip'],
      [9, 'entry.when.any[1].customer.vip'],
      [10, 'exit.on_event[0].where.$where'],
    ]);
    expect(found[0]!.message).toContain('paths start with "event."');
    expect(found[1]!.message).toContain('unknown field "customer.vip"');
    expect(found[2]!.message).toContain('"$where"');
  });

  test('missing and wrong-typed top-level fields, unknown keys', () => {
    const found = errors(
      yaml(
        'id: Cart_Abandonment', //                1
        'version: "3"', //                        2
        'group: [a]', //                          3
        'triger: { event: A }', //                4
        'steps: { wait: 1h }', //                 5
      ),
    );
    expect(found.map((p) => [p.line, p.path])).toEqual([
      [1, 'priority'],
      [1, 'trigger'],
      [1, 'id'],
      [2, 'version'],
      [3, 'group'],
      [4, 'triger'],
      [5, 'steps'],
    ]);
    expect(found.map((p) => p.message)).toEqual([
      expect.stringMatching(/^missing "priority": a whole number/),
      expect.stringMatching(/^missing "trigger": what starts the flow/),
      expect.stringMatching(/^id "Cart_Abandonment" must be kebab-case/),
      'version must be a positive whole number, got "3"',
      'group must be non-empty text, got a list',
      expect.stringMatching(/^unknown key "triger" in a flow file \(did you mean "trigger"\?\); allowed keys: id, version/),
      'steps must be a list of steps ("- wait: 1h"), got a map',
    ]);
  });

  test('a file that is not a map, or is empty', () => {
    expect(onlyError('- just\n- a list\n')).toMatchObject({ line: 1, message: expect.stringContaining('a flow file must be a map') });
    expect(onlyError('# nothing here\n')).toMatchObject({ line: 1, message: expect.stringContaining('empty file') });
  });

  test('duplicate step labels', () => {
    const p = onlyError(yaml(...HEADER, 'steps:', '  - id: same', '    wait: 1h', '  - id: same', '    send: { template: welcome }'));
    expect(p).toMatchObject({ line: 8, column: 9, path: 'steps[1].id' });
    expect(p.message).toContain('duplicate step id "same": already used at line 6 (steps[0])');
  });

  test('bad HH:MM and bad time zone', () => {
    const found = errors(yaml(...HEADER, 'timezone: Mars/Olympus_Mons', 'steps:', '  - wait: { until: "9:75" }', '  - wait: { until: "24:00" }', '  - wait: { until: "7:05" }'));
    expect(found.map((p) => [p.line, p.path])).toEqual([
      [5, 'timezone'],
      [7, 'steps[0].wait.until'],
      [8, 'steps[1].wait.until'],
    ]);
    expect(found[0]!.message).toContain('unknown time zone "Mars/Olympus_Mons"');
    expect(found[1]!.message).toContain('HH:MM on a 24-hour clock');
  });

  test('step shape errors: two kinds, no kind, not a map, unknown keys inside a step', () => {
    const found = errors(
      yaml(
        ...HEADER,
        'steps:', //                                                        5
        '  - wait: 1h', //                                                  6
        '    send: { template: welcome }', //                               7
        '  - id: lonely', //                                                8
        '  - wait 1h', //                                                   9
        '  - send: { template: welcome, subject: Hi }', //                  10
        '  - update_profile: { set: { profile.vip: true, tags: [a] } }', // 11
        '  - update_profile: {}', //                                        12
      ),
    );
    expect(found.map((p) => [p.line, p.path])).toEqual([
      [7, 'steps[0].send'],
      [8, 'steps[1]'],
      [9, 'steps[2]'],
      [10, 'steps[3].send.subject'],
      [11, 'steps[4].update_profile.set.profile.vip'],
      [11, 'steps[4].update_profile.set.tags'],
      [12, 'steps[5].update_profile'],
    ]);
    expect(found[2]!.message).toContain('write "wait: 1h"');
    expect(found[4]!.message).toContain('write "vip"');
  });

  test('YAML syntax errors carry their line and stop further checks', () => {
    const result = check(yaml(...HEADER, 'steps:', '  - wait: [1h', '  - sned: x'));
    expect(result.flow).toBeUndefined();
    expect(result.problems.length).toBeGreaterThan(0);
    expect(result.problems.every((p) => p.message.startsWith('YAML syntax:'))).toBe(true);
    expect(result.problems[0]!.line).toBeGreaterThanOrEqual(6);
    expect(onlyError(yaml(...HEADER, 'version: 2', 'steps: []'))).toMatchObject({ line: 5, message: 'YAML syntax: Map keys must be unique' });
  });

  test('every problem is reported together, in file order, and compileFlow throws them all', () => {
    const source = yaml(
      'id: multi', //                                         1
      'version: 1', //                                        2
      'priority: 1', //                                       3
      'trigger: { event: A }', //                             4
      'steps:', //                                            5
      '  - sned: {}', //                                      6
      '  - send: { template: missing }', //                   7
      '  - wait: 1y', //                                      8
      '  - split: { when: { profile.x: { foo: 1 } } }', //    9
      '  - exit: bye', //                                     10
      '  - wait: 1h', //                                      11
    );
    const found = errors(source);
    expect(found.map((p) => p.line)).toEqual([6, 7, 8, 9, 11]);
    let thrown: unknown;
    try {
      compileFlow(source, 'flows/multi.yaml', options);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(InvalidFileError);
    const error = thrown as InvalidFileError;
    expect(error.problems.filter((p) => p.severity === 'error')).toHaveLength(5);
    expect(error.message.split('\n')[0]).toBe(
      'flows/multi.yaml:6:5 (steps[0].sned): error: unknown step kind "sned" (did you mean "send"?); ' +
        'use one of: wait, wait_for, split, ab_split, send, update_profile, exit, goto (plus an optional "id:" label)',
    );
  });

  test('warnings do not fail validation', () => {
    const result = check(
      yaml('id: x', 'version: 1', 'priority: 1', 'trigger: { event: A, count: { at_least: 1, within: 1d } }', 'steps: [ { wait: 1h } ]'),
    );
    expect(result.flow).toBeDefined();
    expect(result.problems).toEqual([expect.objectContaining({ severity: 'warning', line: 4, path: 'trigger.count.at_least' })]);
  });

  test('checkFlow turns an alias bomb into a problem instead of throwing', () => {
    const bomb = yaml(
      ...HEADER,
      'steps:',
      '  - send:',
      '      template: welcome',
      '      data:',
      '        a: &a [x, x, x, x, x, x, x, x, x, x]',
      '        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]',
      '        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]',
      '        d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]',
    );
    const result = check(bomb);
    expect(result.flow).toBeUndefined();
    expect(result.problems).toEqual([expect.objectContaining({ severity: 'error', message: expect.stringContaining('could not read the file') })]);
  });

  test('positions of top-level keys are returned for cross-file checks', () => {
    expect(check(yaml(...HEADER, 'steps: []')).positions.version).toEqual({ line: 2, column: 1 });
  });
});
