// Headless Chromium for the page tests and the README gallery (scripts/gallery.ts): Debian's /usr/bin/chromium
// (CHROMIUM_PATH names another) driven by playwright-core, with the flags that keep it off this machine's closed network.
import fs from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** The Chromium binary to drive: CHROMIUM_PATH, else Debian's. */
export function chromiumPath(): string {
  return process.env.CHROMIUM_PATH || '/usr/bin/chromium';
}

/** Launches Chromium; a missing binary is refused with what to install, rather than playwright's download advice. */
export function launchChromium(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!fs.existsSync(executablePath)) {
    return Promise.reject(
      new Error(`no Chromium at ${executablePath}: install Debian's packages chromium and chromium-driver (as root, \`bash scripts/ensure-chromium.sh\` does), or set CHROMIUM_PATH to a Chromium binary`),
    );
  }
  return chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
