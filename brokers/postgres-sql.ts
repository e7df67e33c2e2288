/**
 * SQL of the PostgreSQL broker, one statement per operation. `s` is the quoted schema name.
 *
 * A message row is ready when `run_at <= now_ms()`. A claim sets a fresh `lease_token` and moves
 * `run_at` to the lease deadline, so a delivery whose lease runs out is simply ready again (and its
 * old token no longer matches). Every statement that makes a message ready (or due later) sends
 * `NOTIFY <channel>, '<run_at> <group>'`; inside a caller's transaction PostgreSQL delivers it at commit.
 */

/** Notification of the earliest `run_at` of the rows in CTE `rows` of group `g` (a parameter). */
const notify = (g: string): string => `SELECT pg_notify($CH, min(run_at)::text || ' ' || ${g})::text AS notified, count(*)::int AS n FROM rows HAVING count(*) > 0`;

/** Replaces the `$CH` placeholder by the parameter number of the channel. */
const ch = (sql: string, n: number): string => sql.replace('$CH', `$${n}`);

/** Publishes one message: $1 group, $2 body, $3 available-at epoch ms or NULL (now), $4 channel. */
export const publishSql = (s: string): string =>
  ch(`WITH rows AS (INSERT INTO ${s}.messages (grp, body, run_at) VALUES ($1, $2, COALESCE($3::bigint, ${s}.now_ms())) RETURNING run_at) ${notify('$1')}`, 4);

/** Publishes many messages in order: $1 group, $2 text[] bodies, $3 bigint[] available-at (NULL: now), $4 channel. */
export const publishBatchSql = (s: string): string =>
  ch(
    `WITH rows AS (
      INSERT INTO ${s}.messages (grp, body, run_at)
      SELECT $1, x.body, COALESCE(x.at, ${s}.now_ms()) FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS x(body, at, o) ORDER BY x.o
      RETURNING run_at
    ) ${notify('$1')}`,
    4,
  );

/**
 * Claims up to $2 ready messages of group $1 under lease token $3 for $4 ms, oldest first, skipping
 * rows other claimers hold. When none was claimed, one row with only `next` (the earliest `run_at`
 * of the group: a delay or a lease deadline) tells the waiter when to look again.
 */
export const claimSql = (s: string): string => `
WITH c AS (
  SELECT id, run_at AS due FROM ${s}.messages
  WHERE grp = $1 AND run_at <= ${s}.now_ms()
  ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
), u AS (
  UPDATE ${s}.messages m SET lease_token = $3, run_at = ${s}.now_ms() + $4::bigint, deliveries = m.deliveries + 1
  FROM c WHERE m.id = c.id
  RETURNING m.id, m.body, m.deliveries, c.due
)
SELECT id::text AS id, body, deliveries, due, NULL::bigint AS next FROM u
UNION ALL
SELECT NULL, NULL, NULL, NULL, (SELECT min(run_at) FROM ${s}.messages WHERE grp = $1) WHERE NOT EXISTS (SELECT 1 FROM u)
ORDER BY due, id`;

/** Acks many deliveries: $1 bigint[] ids, $2 uuid[] lease tokens (a stale token matches nothing). */
export const ackSql = (s: string): string =>
  `DELETE FROM ${s}.messages m USING unnest($1::bigint[], $2::uuid[]) AS x(id, lease) WHERE m.id = x.id AND m.lease_token = x.lease`;

/** Replaces a leased message: $1 id, $2 lease, $3 new body, $4 available-at epoch ms, $5 channel. */
export const retrySql = (s: string): string =>
  ch(
    `WITH rows AS (
      UPDATE ${s}.messages SET body = $3, run_at = $4::bigint, lease_token = NULL, deliveries = 0
      WHERE id = $1 AND lease_token = $2 RETURNING run_at, grp
    ) SELECT pg_notify($CH, min(run_at)::text || ' ' || min(grp))::text AS notified, count(*)::int AS n FROM rows HAVING count(*) > 0`,
    5,
  );

/** Hands a leased message back, ready now: $1 id, $2 lease, $3 channel. */
export const releaseSql = (s: string): string =>
  ch(
    `WITH rows AS (
      UPDATE ${s}.messages SET run_at = ${s}.now_ms(), lease_token = NULL
      WHERE id = $1 AND lease_token = $2 RETURNING run_at, grp
    ) SELECT pg_notify($CH, min(run_at)::text || ' ' || min(grp))::text AS notified, count(*)::int AS n FROM rows HAVING count(*) > 0`,
    3,
  );

/** Renews leases: $1 bigint[] ids, $2 uuid[] leases, $3 lease ms; returns the ids still held. */
export const extendSql = (s: string): string => `
UPDATE ${s}.messages m SET run_at = ${s}.now_ms() + $3::bigint
FROM unnest($1::bigint[], $2::uuid[]) AS x(id, lease)
WHERE m.id = x.id AND m.lease_token = x.lease
RETURNING m.id::text AS id`;

/** Moves a leased message to the dead letters: $1 id, $2 lease, $3 code, $4 message. */
export const deadLetterSql = (s: string): string => `
WITH d AS (DELETE FROM ${s}.messages WHERE id = $1 AND lease_token = $2 RETURNING grp, body)
INSERT INTO ${s}.dead_letters (grp, body, code, message, at) SELECT grp, body, $3, $4, ${s}.now_ms() FROM d`;

/** Lists dead letters oldest first: $1 group, $2 offset, $3 limit. */
export const listDeadSql = (s: string): string =>
  `SELECT id::text AS id, body, code, message, at FROM ${s}.dead_letters WHERE grp = $1 ORDER BY id OFFSET $2 LIMIT $3`;

/** Moves dead letters back, ready now: $1 group, $2 bigint[] ids or NULL (all), $3 channel. */
export const redriveSql = (s: string): string =>
  ch(
    `WITH d AS (
      DELETE FROM ${s}.dead_letters WHERE grp = $1 AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[])) RETURNING id, body
    ), rows AS (
      INSERT INTO ${s}.messages (grp, body, run_at) SELECT $1, body, ${s}.now_ms() FROM d ORDER BY id RETURNING run_at
    ) ${notify('$1')}`,
    3,
  );

/** Deletes dead letters: $1 group, $2 bigint[] ids or NULL (all). */
export const deleteDeadSql = (s: string): string =>
  `DELETE FROM ${s}.dead_letters WHERE grp = $1 AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))`;

/** Counts of a group: $1 group. Ready includes deliveries whose lease ran out (claimable again). */
export const countsSql = (s: string): string => `
WITH n AS (SELECT ${s}.now_ms() AS now)
SELECT
  count(*) FILTER (WHERE m.run_at <= n.now)::int AS ready,
  count(*) FILTER (WHERE m.run_at > n.now AND m.lease_token IS NULL)::int AS delayed,
  count(*) FILTER (WHERE m.run_at > n.now AND m.lease_token IS NOT NULL)::int AS in_flight,
  (SELECT count(*) FROM ${s}.dead_letters WHERE grp = $1)::int AS dead
FROM n LEFT JOIN ${s}.messages m ON m.grp = $1`;

/** Deletes every message and dead letter of a group: $1 group. */
export const purgeSql = (s: string): string =>
  `WITH a AS (DELETE FROM ${s}.messages WHERE grp = $1) DELETE FROM ${s}.dead_letters WHERE grp = $1`;
