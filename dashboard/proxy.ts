/**
 * Behind a reverse proxy (`trustProxy`): what a request says about its client once the proxy's
 * `X-Forwarded-*` headers may be believed. Off by default — then the headers are ignored and the
 * socket is the truth. The client address (for the guessing brake and the audit log) is the
 * right-most `X-Forwarded-For` entry that is not a trusted proxy; `X-Forwarded-Proto: https` makes
 * the session cookie `Secure`; `X-Forwarded-Host` is the host the same-origin check compares with.
 */
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { InvalidOptionError } from '../src/errors.js';

/**
 * Which proxies to believe. `true`: one proxy in front, whatever its address (the connecting peer
 * is it; the client is the right-most `X-Forwarded-For` entry). A list of addresses or CIDR blocks
 * (`['10.0.0.0/8', '::1']`): the headers count only on connections from one of them, and the
 * client is the right-most `X-Forwarded-For` entry that is not one of them (all are: the left-most).
 */
export type TrustProxy = boolean | readonly string[];

/** What the handler needs to know of a request's client. */
export interface ClientView {
  /** The client's address. */
  address: string;
  /** Whether the browser reached the dashboard over HTTPS. */
  https: boolean;
  /** The host the browser addressed (`Host`, or the proxy's `X-Forwarded-Host`). */
  host: string;
}

const familyOf = (a: string): 'ipv4' | 'ipv6' => (isIP(a) === 6 ? 'ipv6' : 'ipv4');

/** An address without IPv4-mapped prefix, port or brackets, or undefined when it is no IP. */
function plainAddress(raw: string): string | undefined {
  let a = raw.trim();
  if (a.startsWith('[')) a = a.slice(1, a.indexOf(']') > 0 ? a.indexOf(']') : undefined);
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(a)) a = a.slice(0, a.lastIndexOf(':'));
  if (a.toLowerCase().startsWith('::ffff:') && isIP(a.slice(7)) === 4) a = a.slice(7);
  return isIP(a) === 0 ? undefined : a;
}

/** The first value of a (possibly repeated, comma-separated) header. */
function first(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  const f = s?.split(',')[0]?.trim();
  return f === undefined || f === '' ? undefined : f;
}

/** Checks a `trustProxy` option (throws {@link InvalidOptionError}) and makes its reader. */
export class ProxyTrust {
  private readonly list: BlockList | undefined;
  private readonly on: boolean;

  /** @param option the `trustProxy` option (undefined: off) */
  constructor(option: TrustProxy | undefined) {
    if (option === undefined || typeof option === 'boolean') {
      this.on = option === true;
      return;
    }
    if (!Array.isArray(option) || option.length === 0) throw new InvalidOptionError('trustProxy must be true, false, or a non-empty list of addresses / CIDR blocks');
    this.on = true;
    this.list = new BlockList();
    for (const entry of option as unknown[]) {
      const [addr, bits, extra] = typeof entry === 'string' ? entry.split('/') : [];
      const ip = addr === undefined ? undefined : plainAddress(addr);
      if (ip === undefined || extra !== undefined) throw new InvalidOptionError(`trustProxy: ${String(entry)} is not an IP address or CIDR block`);
      if (bits === undefined) {
        this.list.addAddress(ip, familyOf(ip));
        continue;
      }
      const prefix = Number(bits);
      if (!/^\d+$/.test(bits) || prefix > (familyOf(ip) === 'ipv6' ? 128 : 32)) throw new InvalidOptionError(`trustProxy: ${entry as string} has a bad prefix length`);
      this.list.addSubnet(ip, prefix, familyOf(ip));
    }
  }

  /** Whether any forwarded header is believed at all. */
  get enabled(): boolean {
    return this.on;
  }

  private trusted(address: string): boolean {
    if (this.list === undefined) return false;
    const ip = plainAddress(address);
    return ip !== undefined && this.list.check(ip, familyOf(ip));
  }

  /** The client of `req` (see the module comment). */
  view(req: IncomingMessage): ClientView {
    const socketAddress = req.socket.remoteAddress ?? 'unknown';
    const direct: ClientView = { address: socketAddress, https: (req.socket as TLSSocket).encrypted === true, host: req.headers.host ?? '' };
    if (!this.on || (this.list !== undefined && !this.trusted(socketAddress))) return direct;
    const hops = (Array.isArray(req.headers['x-forwarded-for']) ? req.headers['x-forwarded-for'].join(',') : (req.headers['x-forwarded-for'] ?? ''))
      .split(',')
      .map((h) => h.trim())
      .filter((h) => h !== '');
    let address = direct.address;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = plainAddress(hops[i] as string);
      // An entry that is no address ends the chain: what lies left of it cannot be believed.
      if (hop === undefined) break;
      address = hop;
      if (!this.trusted(hop)) break;
    }
    const proto = first(req.headers['x-forwarded-proto'])?.toLowerCase();
    const host = first(req.headers['x-forwarded-host']);
    return { address, https: direct.https || proto === 'https', host: host ?? direct.host };
  }
}
