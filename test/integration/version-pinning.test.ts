// A customer mid-flow finishes on the version they entered with; new entries take the new version;
// a changed flow file that keeps its version number is refused.
import fs from 'node:fs';
import path from 'node:path';
import { post, waitUntil } from '../support/http';
import { startTimeSkippingStack, tempDir, WRITE_KEY, type TimeSkippingStack } from '../support/stack';

let stack: TimeSkippingStack;
let flowsDir: string;
let templatesDir: string;

function flowFile(version: number, template: string, wait = '1h'): string {
  return [
    'id: pinned',
    `version: ${version}`,
    'priority: 10',
    'trigger: { event: Plan Chosen }',
    'entry: { when: { consent.email_marketing: true } }',
    'steps:',
    `  - wait: ${wait}`,
    `  - send: { template: ${template} }`,
    '',
  ].join('\n');
}

beforeAll(async () => {
  flowsDir = tempDir('pin-flows');
  templatesDir = tempDir('pin-templates');
  for (const name of ['pin-v1', 'pin-v2']) {
    fs.writeFileSync(
      path.join(templatesDir, `${name}.mjml`),
      `---\nsubject: "${name}"\n---\n<mjml><mj-body><mj-section><mj-column><mj-text>${name}</mj-text><mj-text><a href="{{unsubscribe_url}}">Unsubscribe</a> <a href="{{preferences_url}}">Manage preferences</a> {{brand.postal_address}}</mj-text></mj-column></mj-section></mj-body></mjml>\n`,
    );
  }
  fs.writeFileSync(path.join(flowsDir, 'pinned.yaml'), flowFile(1, 'pin-v1'));
  stack = await startTimeSkippingStack({ MICROFLOWS_FLOWS_DIR: flowsDir, MICROFLOWS_TEMPLATES_DIR: templatesDir });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  for (const dir of [flowsDir, templatesDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function enter(userId: string): Promise<{ flowVersion: number; workflowId: string }> {
  expect((await post(`${stack.url}/v1/identify`, { userId, traits: { email: `${userId}@example.com`, consent: { email_marketing: true } } }, WRITE_KEY)).status).toBe(200);
  expect((await post(`${stack.url}/v1/track`, { userId, event: 'Plan Chosen' }, WRITE_KEY)).status).toBe(200);
  await stack.runtime.dispatcher.idle();
  return waitUntil(`${userId} entered`, async () => (await stack.runtime.store.flowEntriesOf(userId))[0]);
}

it('running customers keep their version, new ones take the new version', async () => {
  const early = await enter('pin-early');
  expect(early.flowVersion).toBe(1);

  // The file changes while pin-early waits: version 2 sends another template after a longer wait.
  fs.writeFileSync(path.join(flowsDir, 'pinned.yaml'), flowFile(2, 'pin-v2', '2h'));
  const reloaded = await stack.runtime.reloadFlows();
  expect(reloaded.map((f) => `${f.id}@${f.version}`)).toEqual(['pinned@2']);

  const late = await enter('pin-late');
  expect(late.flowVersion).toBe(2);

  await stack.env.sleep('1h');
  const earlyMail = await stack.smtp.waitForCount(1);
  expect(earlyMail.map((m) => [m.to, m.subject])).toEqual([['pin-early@example.com', 'pin-v1']]);
  await expect(stack.env.client.workflow.getHandle(early.workflowId).result()).resolves.toMatchObject({ outcome: 'completed', sends: 1 });

  await stack.env.sleep('1h');
  const all = await stack.smtp.waitForCount(2);
  expect(all.map((m) => [m.to, m.subject])).toEqual([
    ['pin-early@example.com', 'pin-v1'],
    ['pin-late@example.com', 'pin-v2'],
  ]);
  // both versions stay registered: v1 for runs that may still be in flight
  expect((await stack.runtime.store.getFlowVersion('pinned', 1))?.version).toBe(1);
  expect((await stack.runtime.store.getFlowVersion('pinned', 2))?.version).toBe(2);
});

it('a changed flow file that keeps its version number is refused, naming the file', async () => {
  fs.writeFileSync(path.join(flowsDir, 'pinned.yaml'), flowFile(2, 'pin-v1', '5h'));
  await expect(stack.runtime.reloadFlows()).rejects.toThrow(/flow pinned version 2 is already registered with different content \(from .*pinned\.yaml\): bump "version"/);
  // the live version is still the registered one
  expect(stack.runtime.dispatcher.currentFlows().map((f) => f.nodes['steps[0]'])).toEqual([expect.objectContaining({ kind: 'wait', ms: 2 * 3_600_000 })]);
});
