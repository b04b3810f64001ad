// The template library on real files: load errors name every problem, and in dev mode a changed file is recompiled
// while a change that does not compile leaves the previous templates in use.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TemplateLibrary } from '../../activities/templates';
import { waitUntil } from '../support/http';

const template = (greeting: string) => `---
subject: "${greeting}"
category: transactional
---
<mjml><mj-body><mj-section><mj-column><mj-text>${greeting}, {{default profile.first_name "friend"}}</mj-text></mj-column></mj-section></mj-body></mjml>
`;

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-templates-'));
  fs.writeFileSync(path.join(dir, 'hello.mjml'), template('Hello'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const render = (library: TemplateLibrary) => library.render('hello', { profile: { first_name: 'Ana' }, consent: {} });

test('refuses to load a folder with a broken template, listing each problem with file:line', () => {
  fs.writeFileSync(path.join(dir, 'broken.mjml'), '---\nsubject: x\ncategory: transactional\n---\n<mjml><mj-body>\n{{#if profile.x}}<mj-section></mj-section>{{/if}}\n</mj-body></mjml>\n');
  expect(() => new TemplateLibrary(dir)).toThrow(/broken\.mjml:6: error: \{\{#if profile\.x\}\} has no fallback/);
});

test('dev mode: a changed file is recompiled; a broken change keeps the previous templates', async () => {
  const logs: string[] = [];
  const library = new TemplateLibrary(dir, { log: (m) => logs.push(m) });
  library.watch();
  try {
    expect(render(library).subject).toBe('Hello');
    fs.writeFileSync(path.join(dir, 'hello.mjml'), template('Welcome back'));
    await waitUntil('the changed template', async () => render(library).subject === 'Welcome back', 10_000);
    expect(render(library).html).toContain('Welcome back, Ana');

    fs.writeFileSync(path.join(dir, 'hello.mjml'), template('Broken').replace('<mj-text>', '{{#if profile.vip}}<mj-text>VIP</mj-text>{{/if}}<mj-text>'));
    await waitUntil('the reload to be refused', async () => logs.some((m) => m.includes('not reloaded')), 10_000);
    expect(logs.find((m) => m.includes('not reloaded'))).toMatch(/hello\.mjml:\d+: error: /);
    expect(render(library).subject).toBe('Welcome back');
  } finally {
    library.close();
  }
});
