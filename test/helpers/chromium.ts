/**
 * Headless Chromium for the dashboard's browser tests: Debian's `chromium` (installed by
 * `scripts/chromium.sh` when missing), driven by playwright-core, and the sign-in of a page.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Where Debian's package puts the browser. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Launches headless Chromium (installing it first when missing). launch() gives every run a fresh
 * temporary profile; without the background-networking flags its connections hang on a closed network.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) execFileSync('bash', [join(root, 'scripts/chromium.sh')], { stdio: 'inherit' });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Opens `url` in a new page and signs in with `token` through the form. */
export async function signIn(browser: Browser, url: string, token: string): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(url);
  await page.fill('#token', token);
  await page.click('button[type=submit]');
  await page.waitForSelector('#groups, #overview p');
  return page;
}
