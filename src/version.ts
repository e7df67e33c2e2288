/** The version of tasuki (kept equal to package.json's by a test), reported in the worker registry. */
export const TASUKI_VERSION = '0.1.0';
