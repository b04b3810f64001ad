// A flow's `topic:` (what the preference center lets a customer turn off): kebab-case, optional, reported with its
// line like every other field; the shipped flows each declare one.
import fs from 'node:fs';
import path from 'node:path';
import { checkFlow, compileFlow } from '../../core/flow-compiler';

const options = { templateExists: () => true, sha256: 'abc123' };
/** Joins lines so that the line numbers the tests assert are the array index + 1. */
const yaml = (...lines: string[]): string => lines.join('\n') + '\n';
const flow = (...extra: string[]) => yaml('id: cart', 'version: 1', 'priority: 10', ...extra, 'trigger: { event: Product Added }', 'steps: [ { send: { template: cart-reminder } } ]');

describe('topic', () => {
  test('is read as written, and null when the flow has none', () => {
    expect(compileFlow(flow('topic: cart-reminders'), 'flows/cart.yaml', options).topic).toBe('cart-reminders');
    expect(compileFlow(flow(), 'flows/cart.yaml', options).topic).toBeNull();
  });

  test.each([
    ['topic: Cart Reminders', 'topic "Cart Reminders" must be kebab-case'],
    ['topic: cart_reminders', 'topic "cart_reminders" must be kebab-case'],
    ['topic: -cart', 'topic "-cart" must be kebab-case'],
    ['topic: ""', 'topic must be non-empty text'],
    ['topic: [a, b]', 'topic must be non-empty text, got a list'],
  ])('%s is refused with its line and what to write', (line, message) => {
    const result = checkFlow(flow(line), 'flows/cart.yaml', options);
    expect(result.flow).toBeUndefined();
    expect(result.problems).toEqual([expect.objectContaining({ file: 'flows/cart.yaml', line: 4, path: 'topic', severity: 'error', message: expect.stringContaining(message) })]);
  });

  test('a misspelt key suggests topic', () => {
    const result = checkFlow(flow('topc: cart-reminders'), 'flows/cart.yaml', options);
    expect(result.problems).toEqual([expect.objectContaining({ line: 4, message: expect.stringContaining('did you mean "topic"') })]);
  });

  test('every shipped flow with a marketing send declares a topic', () => {
    const dir = path.resolve(__dirname, '../../flows');
    const topics = Object.fromEntries(
      fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('.yaml'))
        .map((f) => {
          const compiled = compileFlow(fs.readFileSync(path.join(dir, f), 'utf8'), `flows/${f}`, options);
          return [compiled.id, compiled.topic];
        }),
    );
    expect(topics).toEqual({ 'browse-abandonment': 'recommendations', 'cart-abandonment': 'cart-reminders', 'post-purchase': 'product-reviews', winback: 'winback-offers' });
  });
});
