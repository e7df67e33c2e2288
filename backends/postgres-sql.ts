/**
 * SQL of the PostgreSQL backend, one statement per operation. `s` is the quoted schema name.
 * A state is live when stored and unexpired: `state IS NOT NULL AND (expires_at IS NULL OR
 * expires_at > now_ms())`; the same holds for the result with its own expiry.
 */

/** Live-state condition on alias `a`. */
const live = (s: string, a: string): string => `${a}.state IS NOT NULL AND (${a}.expires_at IS NULL OR ${a}.expires_at > ${s}.now_ms())`;

/** Expiry column value for a TTL parameter in seconds (-1 forever: NULL). */
const expiry = (s: string, p: string): string => `CASE WHEN ${p}::bigint < 0 THEN NULL ELSE ${s}.now_ms() + ${p}::bigint * 1000 END`;

/**
 * The guarded write: one INSERT ... ON CONFLICT DO UPDATE ... WHERE guard; the outer SELECT reports
 * whether it wrote, sends the final-state notification only when it did and someone watches the
 * task (`watches`), and reads the state stored before the statement (its snapshot).
 *
 * Parameters: $1 id, $2 status (NULL: not stored), $3 state JSON (NULL: not stored), $4 state TTL,
 * $5 whether the result is set by this write, $6 result (NULL: none), $7 result TTL, $8 guard,
 * $9 notification payload (NULL: not final), $10 channel; the task index columns (see
 * `./postgres-index.ts`): $11 group (NULL: not indexed), $12 name, $13 updatedAt (epoch ms).
 */
export function writeSql(s: string): string {
  return `
WITH w AS (
  INSERT INTO ${s}.states AS t (id, status, state, expires_at, result, result_expires_at, grp, name, updated_at)
  VALUES ($1, $2, $3, ${expiry(s, '$4')}, $6, ${expiry(s, '$7')}, $11, $12, $13)
  ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status,
    state = EXCLUDED.state,
    expires_at = EXCLUDED.expires_at,
    grp = EXCLUDED.grp,
    name = EXCLUDED.name,
    updated_at = EXCLUDED.updated_at,
    result = CASE WHEN $5::boolean THEN EXCLUDED.result ELSE t.result END,
    result_expires_at = CASE WHEN $5::boolean THEN EXCLUDED.result_expires_at ELSE t.result_expires_at END
  WHERE NOT (${live(s, 't')} AND (t.status = 'success' OR $8::text = 'absent'
    OR ($8::text = 'notFinal' AND t.status IN ('failure', 'expired', 'aborted'))))
  RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM w) AS written,
  CASE WHEN $9::text IS NOT NULL AND EXISTS (SELECT 1 FROM w) AND EXISTS (SELECT 1 FROM ${s}.watches x WHERE x.id = $1)
    THEN pg_notify($10, $9)::text END AS notified,
  (SELECT p.state FROM ${s}.states p WHERE p.id = $1 AND ${live(s, 'p')}) AS previous`;
}

/** Reads one live state: $1 id. */
export const readSql = (s: string): string => `SELECT state FROM ${s}.states a WHERE a.id = $1 AND ${live(s, 'a')}`;

/** Reads many live states: $1 text[] of ids. */
export const readManySql = (s: string): string => `SELECT id, state FROM ${s}.states a WHERE a.id = ANY($1::text[]) AND ${live(s, 'a')}`;

/** Reads a live result: $1 id. */
export const readResultSql = (s: string): string =>
  `SELECT result FROM ${s}.states WHERE id = $1 AND result IS NOT NULL AND (result_expires_at IS NULL OR result_expires_at > ${s}.now_ms())`;

/** Deletes state and result: $1 id. */
export const deleteSql = (s: string): string => `DELETE FROM ${s}.states WHERE id = $1`;

/**
 * Removes up to $1 rows whose state and result are both gone (expired or not stored). Rows not
 * stored have `expires_at` set to the write time, so the expiry index finds them too.
 */
export const sweepSql = (s: string): string => `
DELETE FROM ${s}.states WHERE id IN (
  SELECT id FROM ${s}.states
  WHERE expires_at <= ${s}.now_ms() AND (result IS NULL OR result_expires_at <= ${s}.now_ms())
  LIMIT $1
)`;

/** Registers watches: $1 text[] ids, $2 uuid[] tokens, $3 lifetime ms. */
export const watchSql = (s: string): string =>
  `INSERT INTO ${s}.watches (id, token, until) SELECT x.id, x.token, ${s}.now_ms() + $3::bigint FROM unnest($1::text[], $2::uuid[]) AS x(id, token)
   ON CONFLICT (id, token) DO UPDATE SET until = EXCLUDED.until`;

/** Ends every watch of an instance: $1 token. */
export const unwatchAllSql = (s: string): string => `DELETE FROM ${s}.watches WHERE token = $1`;

/** Ends a watch: $1 id, $2 token. */
export const unwatchSql = (s: string): string => `DELETE FROM ${s}.watches WHERE id = $1 AND token = $2`;

/** Removes up to $1 watches whose lifetime ended (their process died without ending them). */
export const sweepWatchesSql = (s: string): string =>
  `DELETE FROM ${s}.watches WHERE (id, token) IN (SELECT id, token FROM ${s}.watches WHERE until <= ${s}.now_ms() LIMIT $1)`;
