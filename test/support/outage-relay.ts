// A TCP relay in front of a server (Temporal) that a test can take down and bring back on the same address, as an
// outage does: while down, connections are refused and open ones reset; while held, what the client sends waits.
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface OutageRelay {
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
  close(): Promise<void>;
}

export async function startOutageRelay(target: string): Promise<OutageRelay> {
  const separator = target.lastIndexOf(':');
  const [host, port] = [target.slice(0, separator), Number(target.slice(separator + 1))];
  const sockets = new Set<net.Socket>();
  const waiting: Array<() => void> = [];
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
      if (held) waiting.push(() => upstream.write(chunk));
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
      for (const send of waiting.splice(0)) send();
    },
    close: stop,
  };
}
