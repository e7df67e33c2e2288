/**
 * The nodes a RabbitMQ broker connects to: `url`, `urls` (the nodes of a cluster) or amqplib
 * `connection` fields, checked, with heartbeat and vhost applied.
 */
import type { Options } from 'amqplib';
import { InvalidOptionError } from '../../src/errors.js';
import type { RabbitMQBrokerOptions } from './options.js';
import { errText } from './util.js';

/** The connection targets (URLs or fields) with heartbeat and vhost applied. */
export function connectionTargets(options: RabbitMQBrokerOptions, heartbeat: number): Array<string | Options.Connect> {
  if (options.urls !== undefined && (options.url !== undefined || options.connection !== undefined)) {
    throw new InvalidOptionError('give either urls or url / connection, not both');
  }
  if (options.connection) {
    return [
      {
        ...options.connection,
        heartbeat: options.connection.heartbeat ?? heartbeat,
        ...(options.vhost !== undefined ? { vhost: options.vhost } : {}),
      },
    ];
  }
  if (options.urls !== undefined) {
    if (!Array.isArray(options.urls) || options.urls.length === 0) throw new InvalidOptionError('urls must be a non-empty array of amqp:// or amqps:// URLs');
    return options.urls.map((u: unknown) => {
      if (typeof u !== 'string') throw new InvalidOptionError(`urls must hold strings, got ${typeof u}`);
      return connectionUrl(u, options.vhost, heartbeat);
    });
  }
  return [connectionUrl(options.url ?? 'amqp://guest:guest@127.0.0.1:5672', options.vhost, heartbeat)];
}

/** One URL checked, with heartbeat and vhost applied. */
function connectionUrl(raw: string, vhost: string | undefined, heartbeat: number): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch (err) {
    throw new InvalidOptionError(`url is not a valid URL: ${errText(err)}`);
  }
  if (url.protocol !== 'amqp:' && url.protocol !== 'amqps:') {
    throw new InvalidOptionError(`url must use amqp:// or amqps://, got ${url.protocol}//`);
  }
  if (vhost !== undefined) url.pathname = `/${encodeURIComponent(vhost)}`;
  if (!url.searchParams.has('heartbeat')) url.searchParams.set('heartbeat', String(heartbeat));
  return url.toString();
}
