// Template validation for the command line: a templates folder, or single .mjml files checked with the partials
// and layouts of the folder they sit in.
import path from 'node:path';
import { compileTemplateDir } from '../activities/templates';
import type { Brand } from '../core/brand';
import type { FileProblem } from '../core/errors';
import type { CompiledTemplate } from '../core/template-compiler';

export interface CheckedTemplates {
  templates: CompiledTemplate[];
  problems: FileProblem[];
}

/**
 * Compiles a templates folder, or one template file (reporting only its problems and those of what it includes).
 * Marketing templates must show `brand`'s postal address (a sample one when null).
 */
export function checkTemplates(target: string, brand: Brand | null = null): CheckedTemplates {
  if (!target.endsWith('.mjml')) {
    const loaded = compileTemplateDir(target, undefined, brand);
    return { templates: [...loaded.templates.values()], problems: loaded.problems };
  }
  const dir = path.dirname(target);
  const name = path.basename(target, '.mjml');
  const loaded = compileTemplateDir(dir, undefined, brand);
  const template = loaded.templates.get(name);
  // Problems of the partials and layouts count too: this template may include them.
  const sharedDirs = [path.resolve(dir, 'partials'), path.resolve(dir, 'layouts')];
  const problems = loaded.problems.filter((p) => path.resolve(p.file) === path.resolve(dir, `${name}.mjml`) || sharedDirs.includes(path.dirname(path.resolve(p.file))));
  return { templates: template ? [template] : [], problems };
}
