// Step kinds on the real path (time-skipping server, SMTP socket): wait until a time of day in the
// customer's zone, a goto loop with a wait in it, update_profile, a split that exits.
import fs from 'node:fs';
import path from 'node:path';
import { post, waitUntil } from '../support/http';
import { startTimeSkippingStack, tempDir, WRITE_KEY, type TimeSkippingStack } from '../support/stack';

let stack: TimeSkippingStack;
let flowsDir: string;
let templatesDir: string;

const MORNING_FLOW = `
id: morning-note
version: 1
priority: 10
trigger: { event: Signed Up }
steps:
  - wait: { until: "09:00" }
  - id: note
    send: { template: morning-note }
  - update_profile: { add_tags: [Morning Noted] }
  - split:
      when: { profile.stop_notes: true }
      then:
        - exit: the customer asked to stop
  - wait: 1d
  - goto: note
`;

beforeAll(async () => {
  flowsDir = tempDir('steps-flows');
  templatesDir = tempDir('steps-templates');
  fs.writeFileSync(path.join(flowsDir, 'morning-note.yaml'), MORNING_FLOW);
  fs.writeFileSync(
    path.join(templatesDir, 'morning-note.mjml'),
    '---\nsubject: "Good morning {{profile.first_name}}"\ncategory: transactional\n---\n<mjml><mj-body><mj-section><mj-column><mj-text>Morning!</mj-text></mj-column></mj-section></mj-body></mjml>\n',
  );
  stack = await startTimeSkippingStack({ MICROFLOWS_FLOWS_DIR: flowsDir, MICROFLOWS_TEMPLATES_DIR: templatesDir });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  for (const dir of [flowsDir, templatesDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function newYorkClock(date: Date): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone: 'America/New_York', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(date);
}

it('waits until 09:00 in the customer zone, loops daily, tags the profile, and exits on request', async () => {
  const identify = async (traits: Record<string, unknown>) =>
    expect((await post(`${stack.url}/v1/identify`, { userId: 'tz-1', traits }, WRITE_KEY)).status).toBe(200);
  await identify({ email: 'tz-1@example.com', first_name: 'Ana', timezone: 'America/New_York' });
  expect((await post(`${stack.url}/v1/track`, { userId: 'tz-1', event: 'Signed Up' }, WRITE_KEY)).status).toBe(200);
  await stack.runtime.dispatcher.idle();
  const entry = await waitUntil('tz-1 entered', async () => (await stack.runtime.store.flowEntriesOf('tz-1'))[0]);

  await stack.env.sleep('1d');
  const [first] = await stack.smtp.waitForCount(1);
  expect(first!.subject).toBe('Good morning Ana');
  expect(newYorkClock(first!.date)).toBe('09:00');
  expect(first!.date.getTime() - entry.enteredAt).toBeLessThanOrEqual(86_400_000);

  await stack.env.sleep('1d');
  const two = await stack.smtp.waitForCount(2);
  expect(newYorkClock(two[1]!.date)).toBe('09:00');
  expect(two[1]!.date.getTime() - first!.date.getTime()).toBe(86_400_000);
  expect((await stack.runtime.store.getProfile('tz-1'))?.tags).toEqual(['Morning Noted']);

  await identify({ stop_notes: true });
  await stack.env.sleep('1d');
  await stack.smtp.waitForCount(3);
  await expect(stack.env.client.workflow.getHandle(entry.workflowId).result()).resolves.toMatchObject({
    outcome: 'exited',
    reason: expect.stringContaining('the customer asked to stop'),
    sends: 3,
  });
  expect((await stack.runtime.store.getFlowEntry(entry.workflowId))?.outcome).toBe('exited');
});
