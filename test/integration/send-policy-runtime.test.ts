// The runtime reads flows/policy.yaml at start into Runtime.policy, and the shipped flows beside it load as before
// (the policy file is not a flow, and they register unchanged).
import fs from 'node:fs';
import path from 'node:path';
import { compileSendPolicy } from '../../core/send-policy';
import { PROJECT_ROOT, startTimeSkippingStack, tempDir, type TimeSkippingStack } from '../support/stack';

const POLICY = ['caps:', '  - { name: marketing-daily, group: marketing, max: 1, per: 24h }', 'quiet_hours: { from: "21:00", to: "08:00" }', 'default_timezone: America/New_York', ''].join('\n');

let stack: TimeSkippingStack | undefined;
let flowsDir: string;

beforeAll(async () => {
  flowsDir = tempDir('policy-flows');
  for (const file of fs.readdirSync(path.join(PROJECT_ROOT, 'flows'))) fs.copyFileSync(path.join(PROJECT_ROOT, 'flows', file), path.join(flowsDir, file));
  fs.writeFileSync(path.join(flowsDir, 'policy.yaml'), POLICY);
  stack = await startTimeSkippingStack({ MICROFLOWS_FLOWS_DIR: flowsDir });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (flowsDir) fs.rmSync(flowsDir, { recursive: true, force: true });
});

test('Runtime.policy is the policy file of the flows directory', () => {
  expect(stack!.runtime.policy).toEqual(compileSendPolicy(POLICY, 'policy.yaml'));
  expect(stack!.runtime.policy.caps.map((c) => c.name)).toEqual(['marketing-daily']);
});

test('the shipped flows load beside it, and registering them again finds them unchanged', async () => {
  const ids = stack!.runtime.dispatcher.currentFlows().map((f) => f.id).sort();
  expect(ids).toEqual(['browse-abandonment', 'cart-abandonment', 'post-purchase', 'winback']);
  for (const flow of await stack!.runtime.reloadFlows()) expect(await stack!.runtime.store.registerFlowVersion(flow)).toBe('unchanged');
});
