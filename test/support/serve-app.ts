// Serves the real express app on a free port of 127.0.0.1, for suites that test the HTTP surface on a real socket.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from '../../server/app';

export interface RunningApp {
  url: string;
  close(): Promise<void>;
}

export async function serveApp(deps: Parameters<typeof createApp>[0]): Promise<RunningApp> {
  const server: Server = await new Promise((resolve) => {
    const s = createApp(deps).listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}
