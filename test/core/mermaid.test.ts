// Mermaid diagrams of compiled flows: one node per step, labelled branches, safe labels.
import { compileFlow } from '../../core/flow-compiler';
import { conditionLabel, escapeLabel, flowToMermaid } from '../../core/mermaid';

const options = { templateExists: () => true, sha256: 'x' };
const compile = (...lines: string[]) => compileFlow(lines.join('\n') + '\n', 'flow.yaml', options);

test('draws trigger, steps, labelled branches and the end', () => {
  const flow = compile(
    'id: cart-abandonment',
    'version: 3',
    'priority: 90',
    'trigger: { event: Product Added }',
    'entry: { when: { consent.email_marketing: true } }',
    'exit: { on_event: Order Completed }',
    'steps:',
    '  - id: remind',
    '    wait: 1h',
    '  - send: { template: cart-reminder }',
    '  - split:',
    '      when: { profile.behavior_score: { gte: 50 } }',
    '      then: [ { send: { template: cart-discount } } ]',
    '      else: [ { exit: not engaged } ]',
    '  - wait_for:',
    '      event: Product Added',
    '      timeout: 2d',
    '      on_event: [ { goto: remind } ]',
    '  - wait: { until: "09:00" }',
    '  - update_profile: { set: { nudged: true }, add_tags: [cart], remove_tags: [new] }',
  );
  expect(flowToMermaid(flow)).toBe(
    [
      'flowchart TD',
      '  trigger(["cart-abandonment v3: Product Added"])',
      '  s0("wait 1h")',
      '  s1["send cart-reminder"]',
      '  s2{"split profile.behavior_score gte 50"}',
      '  s3["send cart-discount"]',
      '  s4(["exit: not engaged"])',
      '  s5{{"wait for Product Added up to 2d"}}',
      '  s6("wait until 09:00")',
      '  s7["update profile: set nudged, +tag cart, -tag new"]',
      '  flow_end(["end"])',
      '  goal[/"exit on Order Completed"/]',
      '  trigger -->|"when consent.email_marketing = true"| s0',
      '  s0 --> s1',
      '  s1 --> s2',
      '  s2 -->|"then"| s3',
      '  s2 -->|"else"| s4',
      '  s3 --> s5',
      '  s5 -->|"event"| s0',
      '  s5 -->|"timeout"| s6',
      '  s6 --> s7',
      '  s7 --> flow_end',
      '',
    ].join('\n'),
  );
});

test('trigger labels for counted and inactivity triggers', () => {
  const counted = compile(
    'id: browse',
    'version: 1',
    'priority: 1',
    'trigger: { event: Product Viewed, count: { at_least: 3, within: 7d, same: properties.category } }',
    'steps: [ { wait: 60d } ]',
  );
  const mermaid = flowToMermaid(counted);
  expect(mermaid).toContain('trigger(["browse v1: 3x Product Viewed within 1w (same properties.category)"])');
  expect(mermaid).toContain('s0("wait 60d")');
  const inactive = compile('id: winback', 'version: 1', 'priority: 1', 'trigger: { inactivity: { event: Order Completed, for: 60d } }', 'steps: []');
  expect(flowToMermaid(inactive)).toBe(
    ['flowchart TD', '  trigger(["winback v1: no Order Completed for 60d"])', '  flow_end(["end"])', '  trigger --> flow_end', ''].join('\n'),
  );
});

test('quotes and markup in labels cannot break the diagram', () => {
  const flow = compile(
    'id: quotes',
    'version: 1',
    'priority: 1',
    'trigger: { event: "Say \\"hi\\" <b>#1</b>" }',
    'steps:',
    '  - split: { when: { profile.name: "a\\"b" }, then: [ { exit: "bye | now" } ] }',
  );
  const mermaid = flowToMermaid(flow);
  expect(mermaid).toContain('trigger(["quotes v1: Say #quot;hi#quot; #lt;b#gt;#35;1#lt;/b#gt;"])');
  expect(mermaid).toContain('s0{"split profile.name = a#quot;b"}');
  expect(mermaid).toContain('s1(["exit: bye #124; now"])');
  // Apart from the label delimiters, no raw double quote survives in any line.
  for (const line of mermaid.split('\n')) expect(line.replace(/\["|"\]|\("|"\)|\{"|"\}|\|"|"\|/g, '')).not.toContain('"');
});

test('escapeLabel shortens long labels and flattens newlines', () => {
  expect(escapeLabel('a\nb')).toBe('a b');
  const long = escapeLabel('x'.repeat(200));
  expect(long).toHaveLength(80);
  expect(long.endsWith('...')).toBe(true);
});

test('conditionLabel reads combinators', () => {
  expect(conditionLabel({ any: [{ 'profile.a': 1 }, { not: { 'profile.b': { in: ['x', 'y'] } } }], 'consent.c': true })).toBe(
    '(profile.a = 1 or not (profile.b in ["x","y"])) and consent.c = true',
  );
});

test('an ab_split draws one edge per variant, labelled with its name and weight; an empty variant goes straight on', () => {
  const flow = compile(
    'id: cart',
    'version: 1',
    'priority: 1',
    'trigger: { event: Product Added }',
    'exit: { on_event: Order Completed }',
    'steps:',
    '  - ab_split:',
    '      experiment: cart-subject-test',
    '      variants:',
    '        - { name: control, weight: 45, steps: [ { send: { template: cart-reminder } } ] }',
    '        - { name: discount, weight: 45, steps: [ { send: { template: cart-discount } } ] }',
    '        - { name: nothing, weight: 10 }',
    '      winner: { metric: conversion }',
    '  - send: { template: cart-followup }',
  );
  expect(flowToMermaid(flow)).toBe(
    [
      'flowchart TD',
      '  trigger(["cart v1: Product Added"])',
      '  s0{"A/B test cart-subject-test, winner by conversion"}',
      '  s1["send cart-reminder"]',
      '  s2["send cart-discount"]',
      '  s3["send cart-followup"]',
      '  flow_end(["end"])',
      '  goal[/"exit on Order Completed"/]',
      '  trigger --> s0',
      '  s0 -->|"control 45%"| s1',
      '  s0 -->|"discount 45%"| s2',
      '  s0 -->|"nothing 10%"| s3',
      '  s1 --> s3',
      '  s2 --> s3',
      '  s3 --> flow_end',
      '',
    ].join('\n'),
  );
  const plain = compile('id: t', 'version: 1', 'priority: 1', 'trigger: { event: A }', 'steps:', '  - ab_split:', '      variants: [ { name: a, weight: 50 }, { name: b, weight: 50 } ]');
  expect(flowToMermaid(plain)).toContain('s0{"A/B test t/steps[0]"}\n');
  expect(flowToMermaid(plain)).toContain('  s0 -->|"a 50%"| flow_end\n  s0 -->|"b 50%"| flow_end\n');
});
