/**
 * Calls a listener with every command any ioredis connection of this process sends (its connection,
 * name, arguments and reply promise), by wrapping `Redis.prototype.sendCommand`: for benches that
 * count or time commands (`./send-cost.ts --timeline`, `./bytes-breakdown.ts`). Bench use only; it
 * relies on an ioredis internal.
 */
import { Redis } from 'ioredis';

/** A command as ioredis sends it. */
export interface SentCommand {
  name: string;
  args: unknown[];
  promise: Promise<unknown>;
}

/** Makes `listener` see every command sent from now on (the command is sent unchanged). */
export function onRedisCommand(listener: (connection: Redis, cmd: SentCommand) => void): void {
  const proto = Redis.prototype as unknown as { sendCommand(this: Redis, cmd: SentCommand, stream?: unknown): unknown };
  const original = proto.sendCommand;
  proto.sendCommand = function (cmd, stream) {
    listener(this, cmd);
    return original.call(this, cmd, stream);
  };
}
