// Where two JSON-like values differ, for property tests: Object.is for leaves (so -0 is not 0), own keys compared as
// sets, prototypes compared. Unlike jest's toStrictEqual it reads a key named "constructor" as data.
export function deepDifference(actual: unknown, expected: unknown, path = '$'): string | undefined {
  if (typeof expected !== 'object' || expected === null) {
    return Object.is(actual, expected) ? undefined : `${path}: ${show(actual)} instead of ${show(expected)}`;
  }
  if (typeof actual !== 'object' || actual === null) return `${path}: ${show(actual)} instead of ${show(expected)}`;
  if (Array.isArray(actual) !== Array.isArray(expected)) return `${path}: ${show(actual)} instead of ${show(expected)}`;
  if (Object.getPrototypeOf(actual) !== Object.getPrototypeOf(expected)) return `${path}: another prototype`;
  const actualKeys = Object.keys(actual).sort();
  const expectedKeys = Object.keys(expected).sort();
  if (actualKeys.join('\u0000') !== expectedKeys.join('\u0000')) return `${path}: keys ${show(actualKeys)} instead of ${show(expectedKeys)}`;
  for (const key of expectedKeys) {
    const d = deepDifference((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key], `${path}[${JSON.stringify(key)}]`);
    if (d) return d;
  }
  return undefined;
}

function show(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (Object.is(value, -0)) return '-0';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}
