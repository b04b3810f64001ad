// Real headless Chromium for page tests: Debian's /usr/bin/chromium (CHROMIUM_PATH names another) driven by
// playwright-core, with the flags that keep it off this machine's closed network.
import { chromium, type Browser } from 'playwright-core';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
