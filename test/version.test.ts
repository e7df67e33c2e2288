import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { TASUKI_VERSION } from '../src/version.js';

describe('version', () => {
  it('TASUKI_VERSION (reported in the worker registry) equals package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(TASUKI_VERSION).toBe(pkg.version);
  });
});
