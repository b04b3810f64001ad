// A TCP relay between a process and a server (a worker or a client, and Temporal) that a test controls: taken down
// and brought back on the same address, as an outage does (connections refused, open ones reset), or held, so that
// what the process sends waits — a test can then kill the process after a side effect and before the server hears.
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpRelay {
  /** host:port to give the client instead of the server's address. */
  address: string;
  /** Stops listening and resets every open connection: the server is unreachable. */
  down(): Promise<void>;
  /** Listens again on the same port (nothing to do when it is up). */
  up(): Promise<void>;
  /** From now on, bytes from the client wait (a call in flight hangs) until `release`. */
  hold(): void;
  /** Sends what waited and lets bytes through again. */
  release(): void;
  /** Bytes waiting since `hold` (what the process tried to say). */
  heldBytes(): number;
  close(): Promise<void>;
}

export async function startTcpRelay(target: string): Promise<TcpRelay> {
  const separator = target.lastIndexOf(':');
  const [host, port] = [target.slice(0, separator), Number(target.slice(separator + 1))];
  const sockets = new Set<net.Socket>();
  const waiting: Array<{ upstream: net.Socket; chunk: Buffer }> = [];
  let held = false;
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // A connection reset on purpose is the point, not an error.
    socket.on('error', () => socket.destroy());
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    track(client);
    track(upstream);
    client.on('data', (chunk: Buffer) => {
      if (held) waiting.push({ upstream, chunk });
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const listen = (on: number) => new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(on, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  await listen(0);
  const { port: relayPort } = server.address() as AddressInfo;
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      waiting.length = 0;
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });

  return {
    address: `127.0.0.1:${relayPort}`,
    down: stop,
    up: () => (server.listening ? Promise.resolve() : listen(relayPort)),
    hold() {
      held = true;
    },
    release() {
      held = false;
      for (const { upstream, chunk } of waiting.splice(0)) upstream.write(chunk);
    },
    heldBytes: () => waiting.reduce((n, { chunk }) => n + chunk.length, 0),
    close: stop,
  };
}
