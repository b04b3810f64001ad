// The HTTP limits every listening port gets (cli/runtime listenOn), on a real socket: a client that never finishes
// its headers is answered 408 and cut off, and connections beyond the cap are closed at once, while the server
// goes on answering others.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type http from 'node:http';
import { listenOn } from '../../cli/runtime';
import { createApp } from '../../server/app';
import { noDispatch } from '../../server/dispatcher';
import { openSqliteStore } from '../../store/sqlite';
import type { Store } from '../../store/store';
import { TEST_ADMIN_KEY } from '../support/http';

let store: Store;
const servers: http.Server[] = [];

beforeAll(async () => {
  store = await openSqliteStore(':memory:');
  await store.migrate();
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  await store.close();
});

async function serve(limits: { headersTimeoutMs: number; requestTimeoutMs: number; keepAliveTimeoutMs: number; maxConnections: number }): Promise<number> {
  const app = createApp({ store, config: { writeKey: 'limits-write-key', adminKey: TEST_ADMIN_KEY }, dispatcher: noDispatch, log: () => undefined });
  const server = await listenOn(app, 0, '127.0.0.1', limits);
  servers.push(server);
  return (server.address() as AddressInfo).port;
}

/** Opens a socket, writes `text`, and resolves with everything received once the server closes it. */
function openAndWrite(port: number, text: string): { socket: net.Socket; closed: Promise<string> } {
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (chunk) => (received += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  socket.write(text);
  return { socket, closed: new Promise((resolve) => socket.once('close', () => resolve(received))) };
}

it('attack: slowloris (headers that never end) is answered 408 and the connection closed after the headers timeout', async () => {
  const port = await serve({ headersTimeoutMs: 1_000, requestTimeoutMs: 2_000, keepAliveTimeoutMs: 5_000, maxConnections: 100 });
  const { closed } = openAndWrite(port, 'GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
  expect(await closed).toMatch(/^HTTP\/1\.1 408 /);
  // Others are served meanwhile and after.
  expect((await fetch(`http://127.0.0.1:${port}/api/health`)).status).toBe(200);
}, 30_000);

it('attack: a body trickled forever is cut off after the request timeout', async () => {
  const port = await serve({ headersTimeoutMs: 1_000, requestTimeoutMs: 2_000, keepAliveTimeoutMs: 5_000, maxConnections: 100 });
  const { closed } = openAndWrite(port, 'POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"userId":');
  expect(await closed).toMatch(/^HTTP\/1\.1 408 /);
  expect(await store.tableCounts()).toMatchObject({ events: 0 });
}, 30_000);

it('attack: opening more connections than the cap: the extra ones are closed at once, the held ones still work', async () => {
  const port = await serve({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 30_000, maxConnections: 3 });
  const held = [0, 1, 2].map(() => openAndWrite(port, ''));
  await Promise.all(held.map(({ socket }) => new Promise((resolve) => (socket.readyState === 'open' ? resolve(undefined) : socket.once('connect', resolve)))));
  // The server accepts connections in the order they were made: this one is the fourth.
  const extra = openAndWrite(port, 'GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  expect(await extra.closed).toBe('');
  held[0]!.socket.write('GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  expect(await held[0]!.closed).toMatch(/^HTTP\/1\.1 200 /);
  for (const { socket } of held) socket.destroy();
}, 30_000);
