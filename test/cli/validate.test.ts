// `microflows validate` and `microflows diagram` as users run them: the real CLI in a child process.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadFlowFiles, validatePaths } from '../../cli/project-files';

const ROOT = path.resolve(__dirname, '../..');
const FIXTURES = path.join(ROOT, 'test/fixtures');
const TEMPLATES = path.join(FIXTURES, 'templates');
const INVALID = 'test/fixtures/flows-invalid';
const VALID = 'test/fixtures/flows-valid';
const INVALID_TEMPLATES = 'test/fixtures/templates-invalid';

function microflows(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string; output: string } {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MICROFLOWS_')));
  const result = spawnSync(process.execPath, ['bin/microflows.js', ...args], {
    cwd: ROOT,
    env: { ...clean, MICROFLOWS_TEMPLATES_DIR: TEMPLATES, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, output: result.stdout + result.stderr };
}

describe('microflows validate', () => {
  test.each([
    ['unknown-step-kind.yaml', '7:5 (steps[1].sned)', 'unknown step kind "sned"'],
    ['missing-template.yaml', '8:17 (steps[1].send.template)', 'template "no-such-template" does not exist'],
    ['bad-duration.yaml', '7:11 (steps[1].wait)', '"3 days" is not a duration'],
    ['unreachable-step.yaml', '8:5 (steps[2])', 'unreachable step: it follows "exit" (line 7)'],
    ['loop-without-wait.yaml', '9:5 (steps[2])', 'loop without a wait: goto "again" jumps back to line 7'],
    ['unknown-operator.yaml', '9:11 (steps[0].split.when.profile.behavior_score.greater_than)', 'unknown operator "greater_than"'],
    ['unknown-segment.yaml', '5:12 (trigger.segment)', 'no segment "vip-browsers": create segments/vip-browsers.yaml or use one of at-risk, browsing-no-purchase'],
    ['ab-split-weights.yaml', '10:7 (steps[1].ab_split.variants)', 'variant weights sum to 90, not 100'],
    ['ab-split-click-no-send.yaml', '16:25 (steps[1].ab_split.winner.metric)', 'metric: click cannot be measured: variant "no-email" (line 14) has no send step'],
    ['ab-split-conversion-no-goal.yaml', '18:17 (steps[1].ab_split.winner.metric)', 'metric: conversion counts the flow\'s goal event, and this flow has none: add "exit: { on_event: Order Completed }"'],
    ['holdout-out-of-range.yaml', '4:10 (holdout)', 'holdout must be more than 0% and less than 100%, got 100%'],
  ])('%s fails with file and line', (file, location, message) => {
    const run = microflows(['validate', `${INVALID}/${file}`]);
    expect(run.status).toBe(1);
    const lines = run.output.split('\n').filter((l) => l.includes(': error: '));
    expect(lines).toHaveLength(1);
    expect(lines[0]!.startsWith(`${INVALID}/${file}:${location}: error: `)).toBe(true);
    expect(lines[0]).toContain(message);
    expect(run.output).not.toContain('ok:');
  });

  test('a directory of invalid files reports every file, in name order', () => {
    const run = microflows(['validate', INVALID]);
    expect(run.status).toBe(1);
    const files = run.stdout
      .split('\n')
      .filter((l) => l.includes(': error: '))
      .map((l) => l.split(':')[0]);
    expect(files).toEqual([
      'ab-split-click-no-send.yaml',
      'ab-split-conversion-no-goal.yaml',
      'ab-split-weights.yaml',
      'bad-duration.yaml',
      'holdout-out-of-range.yaml',
      'loop-without-wait.yaml',
      'missing-template.yaml',
      'unknown-operator.yaml',
      'unknown-segment.yaml',
      'unknown-step-kind.yaml',
      'unreachable-step.yaml',
    ].map((f) => `${INVALID}/${f}`));
    expect(run.stdout).toContain('11 errors in 11 files');
  });

  test.each([
    ['broken-tag.mjml', 8, 'MJML: Element mj-txt doesn\'t exist'],
    ['unknown-partial.mjml', 10, 'unknown partial "product-grid": add partials/product-grid.mjml, or use one of: footer'],
    ['no-fallback.mjml', 9, '{{#if profile.last_viewed_product}} has no fallback: add {{else}}'],
  ])('template %s fails naming template and line', (file, line, message) => {
    const run = microflows(['validate', `${INVALID_TEMPLATES}/${file}`]);
    expect(run.status).toBe(1);
    const lines = run.output.split('\n').filter((l) => l.includes(': error: '));
    expect(lines).toEqual([expect.stringContaining(`${INVALID_TEMPLATES}/${file}:${line}: error: `)]);
    expect(lines[0]).toContain(message);
    expect(run.output).not.toContain('ok:');
  });

  test('segment files: each problem with file and line, and in_segment naming a segment that does not exist', () => {
    const dir = 'test/fixtures/segments-invalid';
    const run = microflows(['validate', dir], { MICROFLOWS_SEGMENTS_DIR: path.join(ROOT, dir) });
    expect(run.status).toBe(1);
    const lines = run.stdout.split('\n').filter((l) => l.includes(': error: '));
    expect(lines).toEqual([
      expect.stringMatching(/segments-invalid\/browsers\.yaml:3:\d+ \(rules\[0\]\.performed\.same\): error: same counts per value of an event property/),
      expect.stringMatching(/segments-invalid\/lapsed-vips\.yaml:4:\d+ \(rules\[1\]\.last_performed\.before\): error: before: "60 days" is not a duration/),
    ]);
    // The shipped segments are valid, and a reference to an unknown one is an error at its line.
    const shipped = microflows(['validate', 'segments'], { MICROFLOWS_SEGMENTS_DIR: path.join(ROOT, 'segments') });
    expect(shipped.stdout).toContain('ok: 7 segments valid');
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-segments-'));
    try {
      fs.writeFileSync(path.join(tmp, 'lapsed.yaml'), 'id: lapsed\nrules:\n  - in_segment: vips\n');
      const missing = microflows(['validate', tmp], { MICROFLOWS_SEGMENTS_DIR: tmp });
      expect(missing.stdout).toContain(`${tmp}/lapsed.yaml:3: error: in_segment: no segment "vips"`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('segment files are recognized by what they hold: a copy of segments/ anywhere gives what segments/ gives', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-segments-copy-'));
    try {
      // Not the configured segments dir, and one copy not even named "segments": recognized by content.
      for (const [from, to] of [['segments', 'segments-copy'], ['segments', 'audiences'], ['test/fixtures/segments-invalid', 'invalid-copy']]) {
        fs.cpSync(path.join(ROOT, from!), path.join(tmp, to!), { recursive: true });
      }
      const shipped = microflows(['validate', 'segments']);
      expect(shipped.output).toBe('ok: 7 segments valid\n');
      for (const copy of ['segments-copy', 'audiences']) {
        const run = microflows(['validate', path.join(tmp, copy)]);
        expect({ copy, status: run.status, output: run.output }).toEqual({ copy, status: shipped.status, output: shipped.output });
      }

      const invalidDir = 'test/fixtures/segments-invalid';
      const original = microflows(['validate', invalidDir], { MICROFLOWS_SEGMENTS_DIR: path.join(ROOT, invalidDir) });
      const copied = microflows(['validate', path.join(tmp, 'invalid-copy')]);
      expect(copied.status).toBe(1);
      expect(copied.output).toBe(original.output.split(invalidDir).join(path.join(tmp, 'invalid-copy')));

      // One segment file among flows: each checked as what it is.
      const one = microflows(['validate', path.join(tmp, 'audiences/at-risk.yaml'), VALID]);
      expect(one.output).toBe('ok: 3 flows and 1 segment valid\n');
      expect(one.status).toBe(0);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('a directory holding flows and segments checks each file as what it holds; a file that says neither is placed by its folder', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-mixed-'));
    try {
      fs.copyFileSync(path.join(ROOT, VALID, 'winback.yml'), path.join(tmp, 'winback.yml'));
      fs.copyFileSync(path.join(ROOT, 'segments/lapsed-customers.yaml'), path.join(tmp, 'lapsed-customers.yaml'));
      const mixed = microflows(['validate', tmp]);
      expect(mixed.output).toBe('ok: 1 flow and 1 segment valid\n');
      expect(mixed.status).toBe(0);

      // Neither rules: nor steps:, inside a folder named segments: reported as a segment file missing its rules.
      fs.mkdirSync(path.join(tmp, 'segments'));
      fs.writeFileSync(path.join(tmp, 'segments/vips.yaml'), 'id: vips\ndescription: big spenders\n');
      const located = microflows(['validate', path.join(tmp, 'segments/vips.yaml')]);
      expect(located.status).toBe(1);
      expect(located.output).toContain(`${path.join(tmp, 'segments/vips.yaml')}:1:1: error: missing "rules"`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('the shipped templates pass, and each lists the fields it reads', () => {
    const run = microflows(['validate', 'templates']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^templates\/cart-reminder\.mjml reads: .*profile\.first_name.*profile\.orders_count/m);
    expect(run.stdout).toContain('ok: 9 templates valid');
  });

  test('valid flows pass', () => {
    const run = microflows(['validate', VALID]);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('ok: 3 flows valid\n');
    expect(run.status).toBe(0);
  });

  test('without arguments it validates flows/ of the working directory, templates from MICROFLOWS_TEMPLATES_DIR', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-validate-'));
    try {
      fs.mkdirSync(path.join(dir, 'flows'));
      fs.copyFileSync(path.join(ROOT, VALID, 'cart-abandonment.yaml'), path.join(dir, 'flows/cart.yaml'));
      const spawn = (env: Record<string, string>) =>
        spawnSync(process.execPath, [path.join(ROOT, 'bin/microflows.js'), 'validate'], { cwd: dir, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
      const ok = spawn({ MICROFLOWS_TEMPLATES_DIR: TEMPLATES });
      expect(ok.stdout).toContain('ok: 1 flow and 5 templates valid\n');
      expect(ok.status).toBe(0);
      // The default templates dir is ./templates, which does not exist here: every send is a missing template.
      const missing = spawn({});
      expect(missing.status).toBe(1);
      expect(missing.stdout).toContain('flows/cart.yaml:17:23 (steps[1].send.template): error: template "cart-reminder" does not exist');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('two files with the same flow id and version', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-dup-'));
    try {
      const source = fs.readFileSync(path.join(ROOT, VALID, 'browse-abandonment.yaml'), 'utf8');
      fs.writeFileSync(path.join(dir, 'a.yaml'), source);
      fs.writeFileSync(path.join(dir, 'b.yml'), `# copy\n${source}`);
      const run = microflows(['validate', dir]);
      expect(run.status).toBe(1);
      expect(run.stdout).toContain(
        `${path.join(dir, 'b.yml')}:3:1 (version): error: flow "browse-abandonment" version 1 is also defined in ${path.join(dir, 'a.yaml')}`,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a path that does not exist is an error', () => {
    const run = microflows(['validate', 'test/fixtures/no-such-dir']);
    expect(run.status).toBe(1);
    expect(run.stdout).toContain('test/fixtures/no-such-dir: error: no such file or directory');
  });
});

describe('microflows diagram', () => {
  test('prints the Mermaid chart of a flow given by id', () => {
    const run = microflows(['diagram', 'browse-abandonment'], { MICROFLOWS_FLOWS_DIR: path.join(ROOT, VALID) });
    expect(run.status).toBe(0);
    expect(run.stdout).toBe(
      [
        'flowchart TD',
        '  trigger(["browse-abandonment v1: 3x Product Viewed within 1w (same properties.category)"])',
        '  s0("wait until 09:00")',
        '  s1["send browse-reminder"]',
        '  flow_end(["end"])',
        '  goal[/"exit on Product Added or Order Completed where event.properties.total gt 0"/]',
        '  trigger --> s0',
        '  s0 --> s1',
        '  s1 --> flow_end',
        '',
      ].join('\n'),
    );
  });

  test('accepts a file path', () => {
    const run = microflows(['diagram', `${VALID}/winback.yml`]);
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('s6 --> s0');
    expect(run.stdout).toContain('s1 -->|"timeout"| s4');
  });

  test('an unknown id or an invalid file fails with the reason', () => {
    const unknown = microflows(['diagram', 'nope'], { MICROFLOWS_FLOWS_DIR: path.join(ROOT, VALID) });
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('no valid flow "nope"');
    expect(unknown.stderr).toContain('browse-abandonment@1, cart-abandonment@3, winback@2');
    const invalid = microflows(['diagram', `${INVALID}/bad-duration.yaml`]);
    expect(invalid.status).toBe(1);
    expect(invalid.stderr).toContain(`${INVALID}/bad-duration.yaml:7:11 (steps[1].wait): error:`);
  });
});

test('an unknown command prints the usage and fails', () => {
  const run = microflows(['frobnicate']);
  expect(run.status).toBe(1);
  expect(run.stderr).toContain('unknown command "frobnicate"');
  expect(run.stderr).toContain('validate [paths...]');
});

describe('project files', () => {
  test('loadFlowFiles compiles every flow file, sorted, with the source hash', () => {
    const { flows, problems } = loadFlowFiles(path.join(FIXTURES, 'flows-valid'), TEMPLATES);
    expect(problems).toEqual([]);
    expect(flows.map((f) => f.id)).toEqual(['browse-abandonment', 'cart-abandonment', 'winback']);
    const file = path.join(FIXTURES, 'flows-valid/winback.yml');
    expect(flows[2]!.source).toEqual({ file, sha256: createHash('sha256').update(fs.readFileSync(file)).digest('hex') });
  });

  test('validatePaths accepts files and directories', () => {
    const problems = validatePaths([path.join(FIXTURES, 'flows-invalid/bad-duration.yaml'), path.join(FIXTURES, 'flows-valid')], TEMPLATES);
    expect(problems).toEqual([expect.objectContaining({ line: 7, path: 'steps[1].wait', severity: 'error' })]);
  });
});

describe('the send policy (policy.yaml beside the flows)', () => {
  const CHECK = 'test/fixtures/check';

  test('in a flows directory it is checked as the policy, not as a flow, with file:line', () => {
    const run = microflows(['validate', `${CHECK}/bad-policy/flows`]);
    expect(run.status).toBe(1);
    const errors = run.output.split('\n').filter((l) => l.includes(': error: '));
    expect(errors).toEqual([expect.stringContaining(`${CHECK}/bad-policy/flows/policy.yaml:3:9 (on_cap): error: on_cap must be defer`)]);
  });

  test('named alone it is checked as the policy', () => {
    const run = microflows(['validate', `${CHECK}/bad-policy/flows/policy.yaml`]);
    expect(run.status).toBe(1);
    expect(run.output).toContain('policy.yaml:3:9 (on_cap): error: on_cap must be defer');
    expect(run.output).not.toContain('missing "id"');
  });

  test('without paths the configured flows directory\'s policy is checked too', () => {
    const run = microflows(['validate'], { MICROFLOWS_FLOWS_DIR: `${CHECK}/bad-policy/flows` });
    expect(run.status).toBe(1);
    expect(run.output).toContain('policy.yaml:3:9 (on_cap): error: on_cap must be defer');
  });

  test('a valid policy and flows using it pass, and the loader never reads it as a flow', () => {
    const run = microflows(['validate', `${CHECK}/starved-skip/flows`], { MICROFLOWS_TEMPLATES_DIR: path.join(ROOT, `${CHECK}/starved-skip/templates`) });
    expect(run.output).toContain('ok: 2 flows and the send policy valid');
    expect(run.status).toBe(0);
    const { flows, problems } = loadFlowFiles(path.join(ROOT, `${CHECK}/starved-skip/flows`), path.join(ROOT, `${CHECK}/starved-skip/templates`));
    expect(problems).toEqual([]);
    expect(flows.map((f) => f.id)).toEqual(['nudges', 'receipts']);
  });
});
