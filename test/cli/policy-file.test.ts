// The send policy read from disk as start, validate and check read it: the default when there is no file, the
// policy when there is one, a refusal naming file:line when it is wrong; and template categories read from headers.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkSendPolicyFile, loadSendPolicy, sendPolicyPath, templateCategoryReader } from '../../cli/policy-file';
import { InvalidFileError } from '../../core/errors';
import { DEFAULT_SEND_POLICY } from '../../core/send-policy';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-policy-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('loadSendPolicy', () => {
  test('without policy.yaml it is the default policy: no caps, no quiet hours', () => {
    expect(loadSendPolicy(dir)).toEqual(DEFAULT_SEND_POLICY);
    expect(checkSendPolicyFile(sendPolicyPath(dir))).toEqual({ policy: DEFAULT_SEND_POLICY, found: false, problems: [] });
  });

  test('policy.yaml in the flows directory is read, events included', () => {
    fs.writeFileSync(sendPolicyPath(dir), 'caps:\n  - { name: daily, max: 1, per: 24h }\non_cap: skip\nevents: [Ticket Closed, Ticket Closed]\n');
    const policy = loadSendPolicy(dir);
    expect(policy.caps).toEqual([{ name: 'daily', group: null, topic: null, transactional: false, max: 1, perMs: 86_400_000 }]);
    expect(policy.onCap).toBe('skip');
    expect(policy.events).toEqual(['Ticket Closed']);
  });

  test('a bad policy is refused with every problem at its file:line', () => {
    fs.writeFileSync(sendPolicyPath(dir), 'on_cap: later\nevents: { a: 1 }\n');
    let thrown: unknown;
    try {
      loadSendPolicy(dir);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(InvalidFileError);
    expect((thrown as InvalidFileError).problems).toEqual([
      expect.objectContaining({ file: sendPolicyPath(dir), line: 1, path: 'on_cap', severity: 'error' }),
      expect.objectContaining({ line: 2, path: 'events', severity: 'error', message: expect.stringContaining('events must be a list of text') }),
    ]);
  });
});

describe('templateCategoryReader', () => {
  test('reads category from the header; no category, no header or no file is marketing', () => {
    fs.writeFileSync(path.join(dir, 'receipt.mjml'), '---\nsubject: "Receipt"\ncategory: transactional\n---\n<mjml></mjml>\n');
    fs.writeFileSync(path.join(dir, 'promo.mjml'), '---\nsubject: "Promo"\n---\n<mjml></mjml>\n');
    fs.writeFileSync(path.join(dir, 'bare.mjml'), '<mjml></mjml>\n');
    const categoryOf = templateCategoryReader(dir);
    expect(['receipt', 'promo', 'bare', 'missing'].map(categoryOf)).toEqual(['transactional', 'marketing', 'marketing', 'marketing']);
  });
});
