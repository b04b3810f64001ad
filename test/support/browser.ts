// Real headless Chromium for page tests: the launch lives in scripts/chromium.ts, shared with the README gallery.
export { launchChromium } from '../../scripts/chromium';
