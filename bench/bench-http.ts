// POST to a runtime under test with the bench write key, over one keep-alive agent, failing on any answer but 200.
import http from 'node:http';
import { BENCH_WRITE_KEY } from './embedded-stack';

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const authorization = `Basic ${Buffer.from(`${BENCH_WRITE_KEY}:`).toString('base64')}`;

export function post(baseUrl: string, route: string, body: unknown): Promise<void> {
  const url = new URL(route, baseUrl);
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'content-length': data.length, authorization };
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${route} answered ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** Closes the agent's kept-alive sockets, so the bench process can exit. */
export function closeConnections(): void {
  agent.destroy();
}
