// Reads the brand settings file (MICROFLOWS_BRAND_FILE, default brand.yaml in the project): the I/O side of core/brand.
import fs from 'node:fs';
import path from 'node:path';
import { checkBrand, type Brand } from '../core/brand';
import { ConfigError, InvalidFileError, type FileProblem } from '../core/errors';

/** Paths inside the working directory print relative, so `file:line` is clickable and short. */
function shown(file: string): string {
  const relative = path.relative(process.cwd(), path.resolve(file));
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : path.resolve(file);
}

/** The brand file's settings and problems; `brand` is null when the file does not exist (no problem) or is invalid. */
export function checkBrandFile(file: string): { brand: Brand | null; problems: FileProblem[] } {
  let source: string;
  try {
    source = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { brand: null, problems: [] };
    return { brand: null, problems: [{ file: shown(file), severity: 'error', message: `cannot read the brand file: ${(err as Error).message}` }] };
  }
  const checked = checkBrand(source, shown(file));
  return { brand: checked.brand ?? null, problems: checked.problems };
}

/** The brand settings, or null when the file does not exist; throws InvalidFileError (file:line, field) when invalid. */
export function loadBrandFile(file: string): Brand | null {
  const { brand, problems } = checkBrandFile(file);
  if (problems.some((p) => p.severity === 'error')) throw new InvalidFileError(problems);
  return brand;
}

/** Why marketing email cannot go out without a brand file: CAN-SPAM wants the sender's postal address in each. */
export function missingBrandMessage(file: string, marketingTemplates: readonly string[]): string {
  return (
    `no brand file at ${shown(file)}, and marketing templates (${marketingTemplates.join(', ')}) must show the sender's postal address: ` +
    'create it with "name:" and "postal_address:" (see the README, "Compliant footers"), or set MICROFLOWS_BRAND_FILE to where it is'
  );
}

/** Throws ConfigError when marketing templates are loaded without a brand to take the postal address from. */
export function requireBrandForMarketing(file: string, brand: Brand | null, marketingTemplates: readonly string[]): void {
  if (!brand && marketingTemplates.length > 0) throw new ConfigError(missingBrandMessage(file, marketingTemplates));
}
