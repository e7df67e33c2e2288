/**
 * An in-process stand-in of the MongoDB collection operations the backend, its task index and its
 * record store use — the query operators, update pipelines, sort, limit, `$group`, `distinct` and
 * duplicate keys of upserts — modelled on MongoDB's documented behaviour. It checks the backend's
 * own logic end to end where no server is available; it is no substitute for one (MONGO_URL).
 */
import type { MongoClient } from 'mongodb';

/** A document. */
export type Doc = Record<string, unknown>;

/** Evaluates an aggregation expression against a document. */
export function evalExpr(expr: unknown, doc: Doc, vars: Record<string, unknown>): unknown {
  if (typeof expr === 'string' && expr.startsWith('$$')) return vars[expr.slice(2)];
  if (typeof expr === 'string' && expr.startsWith('$')) return doc[expr.slice(1)];
  if (Array.isArray(expr)) return expr.map((e) => evalExpr(e, doc, vars));
  if (expr === null || typeof expr !== 'object' || expr instanceof Date) return expr;
  const [op, arg] = Object.entries(expr)[0] as [string, unknown];
  const args = (): unknown[] => (arg as unknown[]).map((a) => evalExpr(a, doc, vars));
  const same = (a: unknown, b: unknown): boolean => (a instanceof Date && b instanceof Date ? a.getTime() === b.getTime() : a === b); // missing !== null, as in MongoDB
  switch (op) {
    case '$literal':
      return arg;
    case '$ifNull': {
      const [a, b] = args();
      return a === null || a === undefined ? b : a;
    }
    case '$eq': {
      const [a, b] = args();
      return same(a, b);
    }
    case '$ne': {
      const [a, b] = args();
      return !same(a, b);
    }
    case '$and':
      return args().every(Boolean);
    case '$or':
      return args().some(Boolean);
    case '$cond': {
      const [c, t, f] = arg as unknown[];
      return evalExpr(c, doc, vars) ? evalExpr(t, doc, vars) : evalExpr(f, doc, vars);
    }
    case '$max': {
      const dates = args().filter((v): v is Date => v instanceof Date);
      return dates.length === 0 ? null : new Date(Math.max(...dates.map((d) => d.getTime())));
    }
    case '$let': {
      const { vars: defs, in: body } = arg as { vars: Record<string, unknown>; in: unknown };
      const scope = { ...vars };
      for (const [k, v] of Object.entries(defs)) scope[k] = evalExpr(v, doc, vars);
      return evalExpr(body, doc, scope);
    }
    default:
      throw new Error(`simulated collection: unsupported operator ${op}`);
  }
}

/** MongoDB's order within one type: numbers, strings (binary), dates. */
function compare(a: unknown, b: unknown): number | undefined {
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  return undefined; // different types never match a range operator
}

const equal = (a: unknown, b: unknown): boolean => (a instanceof Date && b instanceof Date ? a.getTime() === b.getTime() : a === b);

/** One field condition: a value (equality; null matches missing) or an object of operators. */
function fieldMatches(v: unknown, cond: unknown): boolean {
  if (cond === null) return v === null || v === undefined;
  if (typeof cond !== 'object' || cond instanceof Date) return equal(v, cond);
  return Object.entries(cond as Doc).every(([op, arg]) => {
    const c = compare(v, arg);
    switch (op) {
      case '$exists':
        return (v !== undefined) === Boolean(arg);
      case '$in':
        return (arg as unknown[]).some((x) => equal(v, x));
      case '$gt':
        return c !== undefined && c > 0;
      case '$gte':
        return c !== undefined && c >= 0;
      case '$lt':
        return c !== undefined && c < 0;
      case '$lte':
        return c !== undefined && c <= 0;
      default:
        throw new Error(`stand-in: unsupported query operator ${op}`);
    }
  });
}

/** Whether a document matches a query filter. */
export function matches(doc: Doc, filter: Doc): boolean {
  return Object.entries(filter).every(([k, cond]) => {
    if (k === '$or') return (cond as Doc[]).some((f) => matches(doc, f));
    if (k === '$and') return (cond as Doc[]).every((f) => matches(doc, f));
    return fieldMatches(doc[k], cond);
  });
}

const duplicate = (): Error => Object.assign(new Error('E11000 duplicate key error'), { code: 11000 });

/** Applies update pipeline stages (`$set` of expressions, `$unset`) to a copy of `doc`. */
function applyPipeline(doc: Doc, pipeline: Doc[]): Doc {
  let out = { ...doc };
  for (const stage of pipeline) {
    if ('$set' in stage) {
      const next = { ...out };
      for (const [k, e] of Object.entries(stage.$set as Doc)) {
        const v = evalExpr(e, out, {});
        if (v === undefined) delete next[k];
        else next[k] = v;
      }
      out = next;
    } else if ('$unset' in stage) {
      for (const k of stage.$unset as string[]) delete out[k];
    } else throw new Error('stand-in: unsupported pipeline stage');
  }
  return out;
}

/** Applies a classic update document (`$set` values). */
function applyUpdate(doc: Doc, update: Doc): Doc {
  const out = { ...doc };
  for (const [k, v] of Object.entries((update.$set ?? {}) as Doc)) out[k] = v;
  return out;
}

/** A cursor of `find`: sort, limit, toArray. */
class StandInCursor {
  private order: Array<[string, number]> = [];
  private most = Infinity;
  constructor(private readonly docs: Doc[]) {}
  sort(spec: Record<string, number>): this {
    this.order = Object.entries(spec);
    return this;
  }
  limit(n: number): this {
    this.most = n;
    return this;
  }
  async toArray(): Promise<Doc[]> {
    await Promise.resolve();
    const out = [...this.docs];
    out.sort((a, b) => {
      for (const [k, dir] of this.order) {
        const c = compare(a[k], b[k]) ?? 0;
        if (c !== 0) return dir * c;
      }
      return 0;
    });
    return out.slice(0, this.most).map((d) => structuredClone(d));
  }
}

/** One collection. */
export class StandInCollection {
  readonly docs = new Map<string, Doc>();
  readonly indexes: Array<{ key: Doc; options: Doc }> = [];

  private all(filter: Doc): Doc[] {
    return [...this.docs.values()].filter((d) => matches(d, filter));
  }

  async createIndex(key: Doc, options: Doc): Promise<string> {
    if (!this.indexes.some((i) => JSON.stringify(i.key) === JSON.stringify(key))) this.indexes.push({ key, options });
    return options.name as string;
  }

  async findOneAndUpdate(filter: Doc, pipeline: Doc[], options: { upsert: boolean }): Promise<Doc | null> {
    await Promise.resolve();
    const id = filter._id as string;
    const existing = this.docs.get(id);
    if (existing && !matches(existing, filter)) {
      if (options.upsert) throw duplicate();
      return null;
    }
    if (!existing && !options.upsert) return null;
    this.docs.set(id, applyPipeline(existing ?? { _id: id }, pipeline));
    return existing ? structuredClone(existing) : null;
  }

  async updateOne(filter: Doc, update: Doc, options: { upsert?: boolean } = {}): Promise<{ matchedCount: number; modifiedCount: number; upsertedCount: number }> {
    await Promise.resolve();
    const [found] = this.all(filter);
    if (found !== undefined) {
      this.docs.set(found._id as string, applyUpdate(found, update));
      return { matchedCount: 1, modifiedCount: 1, upsertedCount: 0 };
    }
    if (!options.upsert) return { matchedCount: 0, modifiedCount: 0, upsertedCount: 0 };
    const id = filter._id as string;
    if (this.docs.has(id)) throw duplicate();
    this.docs.set(id, applyUpdate({ _id: id }, update));
    return { matchedCount: 0, modifiedCount: 0, upsertedCount: 1 };
  }

  async findOne(filter: Doc): Promise<Doc | null> {
    await Promise.resolve();
    const [d] = this.all(filter);
    return d === undefined ? null : structuredClone(d);
  }

  find(filter: Doc): StandInCursor {
    return new StandInCursor(this.all(filter));
  }

  async distinct(field: string, filter: Doc): Promise<unknown[]> {
    await Promise.resolve();
    return [...new Set(this.all(filter).map((d) => d[field]).filter((v) => v !== undefined))];
  }

  aggregate(stages: Doc[]): { toArray(): Promise<Doc[]> } {
    return {
      toArray: async () => {
        await Promise.resolve();
        let rows = [...this.docs.values()];
        for (const stage of stages) {
          if ('$match' in stage) rows = rows.filter((d) => matches(d, stage.$match as Doc));
          else if ('$group' in stage) {
            const spec = stage.$group as { _id: string; n: { $sum: number } };
            const groups = new Map<unknown, number>();
            for (const d of rows) groups.set(evalExpr(spec._id, d, {}), (groups.get(evalExpr(spec._id, d, {})) ?? 0) + spec.n.$sum);
            rows = [...groups].map(([_id, n]) => ({ _id, n }));
          } else throw new Error('stand-in: unsupported aggregation stage');
        }
        return rows;
      },
    };
  }

  async deleteOne(filter: Doc): Promise<{ deletedCount: number }> {
    await Promise.resolve();
    return { deletedCount: this.docs.delete(filter._id as string) ? 1 : 0 };
  }
}

/** A client whose database hands out stand-in collections by name (shared by every backend made on it). */
export function standInClient(): { client: MongoClient; collection(name: string): StandInCollection } {
  const collections = new Map<string, StandInCollection>();
  const collection = (name: string): StandInCollection => {
    let c = collections.get(name);
    if (c === undefined) {
      c = new StandInCollection();
      collections.set(name, c);
    }
    return c;
  };
  const client = { connect: async () => client, db: () => ({ collection }), close: async () => undefined };
  return { client: client as unknown as MongoClient, collection };
}
