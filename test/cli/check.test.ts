// `microflows check` as CI runs it: the real CLI in a child process, one fixture per problem, each reported at its
// file:line with the right exit code, and the shipped flows passing.
import { runCli } from '../support/cli-run';

const FIXTURES = 'test/fixtures/check';
const ENV = { MICROFLOWS_TEMPLATES_DIR: 'test/fixtures/templates' };

function check(fixture: string, extra: string[] = [], env: Record<string, string> = {}) {
  return runCli(['check', '--flows', `${FIXTURES}/${fixture}/flows`, '--segments', `${FIXTURES}/${fixture}/segments`, ...extra], { ...ENV, ...env });
}

describe('microflows check', () => {
  test.each([
    ['tie', 1, 'tie/flows/cart-reminder.yaml:4:1 (priority): error: ', 'cart-reminder and cart-nudge (test/fixtures/check/tie/flows/cart-nudge.yaml:4) can start for the same customer at once'],
    ['segment-tie', 1, 'segment-tie/flows/browsers.yaml:4:1 (priority): error: ', 'segments big-spenders and recent-browsers can hold together'],
    ['send-after-exit', 1, 'send-after-exit/flows/cart.yaml:8:5 (steps[2]): error: ', 'unreachable step: it follows "exit" (line 7)'],
    ['unreachable-step', 1, 'unreachable-step/flows/browse.yaml:10:5 (steps[3]): error: ', 'unreachable step: it follows "goto" (line 9)'],
    ['loop-without-wait', 1, 'loop-without-wait/flows/spin.yaml:12:5 (steps[2]): error: ', 'loop without a wait'],
    ['unknown-wait-event', 0, 'unknown-wait-event/flows/cart.yaml:7 (steps[1]): warning: ', 'wait_for "Order Complete"'],
  ])('%s is reported at its file:line', async (fixture, status, location, message) => {
    const run = await check(fixture);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(status);
    const line = run.stdout.split('\n').find((l) => l.startsWith(`${FIXTURES}/${location}`));
    expect(line).toContain(message);
  });

  test('the tie shows in the flow × flow matrix; small and big spenders are disjoint', async () => {
    const run = await check('segment-tie');
    expect(run.stdout).toMatch(/^big +· +tie! +-$/m);
    expect(run.stdout).toMatch(/^small +- +tie! +·$/m);
  });

  test('an --events file declares the event a wait_for listens to', async () => {
    const run = await check('unknown-wait-event', ['--events', `${FIXTURES}/unknown-wait-event/events.txt`]);
    expect(run.status).toBe(0);
    expect(run.stdout).not.toContain(': warning: ');
    expect(run.stdout).toContain('0 errors, 0 warnings');
  });

  test('--json gives findings and the matrix to tools', async () => {
    const run = await check('tie', ['--json']);
    expect(run.status).toBe(1);
    const report = JSON.parse(run.stdout) as { findings: Array<{ line: number; severity: string }>; flows: string[]; matrix: Record<string, Record<string, { kind: string }>> };
    expect(report.flows).toEqual(['cart-nudge', 'cart-reminder']);
    expect(report.findings).toEqual([expect.objectContaining({ file: `${FIXTURES}/tie/flows/cart-reminder.yaml`, line: 4, severity: 'error', code: 'tie' })]);
    expect(report.matrix['cart-nudge']!['cart-reminder']!.kind).toBe('tie');
  });

  test('a flow the caps always starve (3 sends inside a 1-per-24h cap with on_cap skip) is an error at each later send', async () => {
    const run = await check('starved-skip', [], { MICROFLOWS_TEMPLATES_DIR: `${FIXTURES}/starved-skip/templates` });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(1);
    const errors = run.stdout.split('\n').filter((l) => l.includes(': error: '));
    expect(errors).toEqual([
      expect.stringMatching(new RegExp(`^${FIXTURES}/starved-skip/flows/nudges\\.yaml:9 \\(steps\\[2\\]\\): error: send nudge is always skipped: the flow's own send at line 7 fills cap "marketing-daily"`)),
      expect.stringMatching(new RegExp(`^${FIXTURES}/starved-skip/flows/nudges\\.yaml:11 \\(steps\\[4\\]\\): error: send nudge is always skipped`)),
    ]);
    // receipts.yaml sends transactional email, which the marketing cap does not count; policy.yaml is no flow.
    expect(run.stdout).not.toContain('receipts.yaml');
    expect(run.stdout).toContain('2 valid flows checked: 2 errors, 0 warnings');
  });

  test('with on_cap defer, a deferral longer than the wait after the send is a warning at its file:line', async () => {
    const run = await check('deferral-beyond-wait', [], { MICROFLOWS_TEMPLATES_DIR: `${FIXTURES}/deferral-beyond-wait/templates` });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const warnings = run.stdout.split('\n').filter((l) => l.includes(': warning: '));
    expect(warnings).toEqual([expect.stringContaining(`${FIXTURES}/deferral-beyond-wait/flows/reminders.yaml:10 (steps[2]): warning: send reminder can be deferred 20h`)]);
    expect(warnings[0]).toContain('2h wait after it at line 11');
  });

  test('events: in policy.yaml declares the event a wait_for listens to', async () => {
    const run = await check('policy-events');
    expect(run.status).toBe(0);
    expect(run.stdout).not.toContain(': warning: ');
    expect(run.stdout).toContain('1 valid flow checked: 0 errors, 0 warnings');
  });

  test('a mistake in policy.yaml is reported at its file:line and fails the check', async () => {
    const run = await check('bad-policy');
    expect(run.status).toBe(1);
    const errors = run.stdout.split('\n').filter((l) => l.includes(': error: '));
    expect(errors).toEqual([expect.stringContaining(`${FIXTURES}/bad-policy/flows/policy.yaml:3:9 (on_cap): error: on_cap must be defer`)]);
  });

  test('the shipped flows and segments pass, with cart abandonment winning the marketing group', async () => {
    const run = await runCli(['check'], {});
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).not.toContain(': error: ');
    expect(run.stdout).toMatch(/^cart-abandonment +cart-abandonment +· +- +cart-abandonment$/m);
    expect(run.stdout).toMatch(/0 errors/);
  });
});
