/**
 * Vitest setup file: with `TASUKI_REDIS_KEY_CHECK=1`, every Redis broker script checks at run time
 * that each key it touches is declared in `KEYS` (`./redis-key-check.ts`); otherwise it does nothing.
 */
if (process.env.TASUKI_REDIS_KEY_CHECK === '1') {
  const { installKeyCheck } = await import('./redis-key-check.js');
  installKeyCheck();
}
