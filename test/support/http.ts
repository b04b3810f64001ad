// Sends Segment-shaped calls to a running microflows server, with the write key in Basic auth.
export function basicAuth(writeKey: string): string {
  return `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`;
}

export async function post(url: string, body: unknown, writeKey = 'test-write-key'): Promise<{ status: number; json: any }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: basicAuth(writeKey) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* keep text */
  }
  return { status: response.status, json };
}

export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The admin key test servers run with (MICROFLOWS_ADMIN_KEY; `adminKey` in createApp's config). */
export const TEST_ADMIN_KEY = 'mf_admin_test-key-for-the-test-suites-only';

/** `Authorization: Bearer` with the test admin key, for /api routes. */
export function adminHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${TEST_ADMIN_KEY}`, ...extra };
}

/** fetch with the test admin key, for /api routes. */
export function adminFetch(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, headers: { ...adminHeaders(), ...((init.headers as Record<string, string> | undefined) ?? {}) } });
}
