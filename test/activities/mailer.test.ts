// The SMTP mailer gives up on a silent server instead of holding its activity for nodemailer's defaults (2 minutes
// to connect, an hour of socket silence); timeouts in SMTP_URL's query win over ours.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createSmtpMailer, smtpUrlWithTimeouts } from '../../activities/mailer';

describe('SMTP mailer timeouts', () => {
  it('adds connection, greeting and socket timeouts to SMTP_URL, keeping any the URL sets', () => {
    const url = new URL(smtpUrlWithTimeouts('smtps://user:p%40ss@mail.example.com:465?socketTimeout=5000'));
    expect(Object.fromEntries(url.searchParams)).toEqual({ socketTimeout: '5000', connectionTimeout: '10000', greetingTimeout: '10000' });
    expect(`${url.protocol}//${url.username}:${url.password}@${url.host}`).toBe('smtps://user:p%40ss@mail.example.com:465');
  });

  it('fails a send to a server that accepts the connection and never greets', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const mailer = createSmtpMailer(`smtp://127.0.0.1:${port}?greetingTimeout=300`);
    try {
      const started = Date.now();
      await expect(
        mailer.send({ from: 'a@example.com', to: 'b@example.com', subject: 's', html: '<p>h</p>', text: 'h', messageId: '<m@example.com>', date: new Date(), headers: {} }),
      ).rejects.toThrow(/greeting/i);
      // Behaviour, not speed: the 300 ms from the URL applied, not nodemailer's 30 s or our 10 s.
      expect(Date.now() - started).toBeLessThan(9_000);
      expect(sockets).toHaveLength(1);
    } finally {
      mailer.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
