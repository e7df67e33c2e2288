/**
 * The conformance suites of tasuki, exported so that third-party brokers and backends run the same
 * tests as the built-in ones (`import { brokerContract, backendContract } from 'tasuki/testing'`,
 * inside a vitest test file).
 */
export { brokerContract, type BrokerHarness } from './broker.js';
export { backendContract, makeState, type BackendHarness } from './backend.js';
export { opsContract } from './ops.js';
export { schedulesContract, type SchedulesHarness } from './schedules.js';
export { journalContract, makeEntry } from './journal.js';
