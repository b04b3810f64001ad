// A TCP relay between a process and a server (a worker and Temporal) that a test can shut like a gate: while held,
// nothing the process sends reaches the server, so a test can kill the process after a side effect and before the
// server hears that it happened.
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpGate {
  /** host:port to give the process instead of the server's address. */
  address: string;
  /** From now on, bytes from the process are kept back (the server still reaches the process). */
  hold(): void;
  /** Closes every relayed connection, dropping what was kept back; later connections pass freely. */
  cut(): void;
  /** Bytes kept back since hold(). */
  heldBytes(): number;
  close(): Promise<void>;
}

export async function startTcpGate(target: string): Promise<TcpGate> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set<net.Socket>();
  let held = false;
  let kept: Buffer[] = [];
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // A relayed connection cut on purpose resets; that is the point, not an error.
    socket.on('error', () => socket.destroy());
  };

  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    track(client);
    track(upstream);
    client.on('data', (chunk: Buffer) => {
      if (held) kept.push(chunk);
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port: gatePort } = server.address() as AddressInfo;

  return {
    address: `127.0.0.1:${gatePort}`,
    hold() {
      held = true;
    },
    cut() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      kept = [];
      held = false;
    },
    heldBytes: () => kept.reduce((n, chunk) => n + chunk.length, 0),
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
