-- The eviction study's tables (benches/eviction-study/run): 1,000 sessions per variant.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
DROP TABLE IF EXISTS s_plain, s_trig, s_cte, s_row, s_stw, s_log CASCADE;
CREATE TABLE s_plain (id text PRIMARY KEY, data bytea NOT NULL, expiry timestamptz NOT NULL, version bigint NOT NULL DEFAULT 1, user_key text);
CREATE INDEX ON s_plain (expiry);
CREATE TABLE s_trig (LIKE s_plain INCLUDING ALL);
INSERT INTO s_plain SELECT 'k' || g, decode(repeat('ab', 150), 'hex'), now() + interval '1 day' FROM generate_series(1, 1000) g;
INSERT INTO s_trig SELECT * FROM s_plain;
CREATE TABLE s_cte (LIKE s_plain INCLUDING ALL); INSERT INTO s_cte SELECT * FROM s_plain;
CREATE TABLE s_row (LIKE s_plain INCLUDING ALL); INSERT INTO s_row SELECT * FROM s_plain;
CREATE TABLE s_stw (LIKE s_plain INCLUDING ALL); INSERT INTO s_stw SELECT * FROM s_plain;
CREATE UNLOGGED TABLE s_log (xid bigint NOT NULL DEFAULT txid_current(), key text NOT NULL);
CREATE INDEX ON s_log (xid);
CREATE OR REPLACE FUNCTION s_evict() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'TRUNCATE' THEN
      PERFORM pg_notify(TG_ARGV[0], '*');
    ELSIF TG_OP = 'UPDATE' AND current_setting('tower_sessions.quiet', true) = 'on' THEN
      INSERT INTO s_log ("key") SELECT changed."id" FROM changed
        WHERE octet_length(changed."id") <= 255 AND left(changed."id", 1) NOT IN ('~', '*');
    ELSE
      PERFORM pg_notify(TG_ARGV[0], changed."id") FROM changed
        WHERE octet_length(changed."id") <= 255 AND left(changed."id", 1) NOT IN ('~', '*');
    END IF;
    RETURN NULL;
  END $$;
CREATE OR REPLACE FUNCTION s_evict_row() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF octet_length(OLD."id") <= 255 AND left(OLD."id", 1) NOT IN ('~', '*') THEN
      PERFORM pg_notify(TG_ARGV[0], OLD."id");
    END IF;
    RETURN NULL;
  END $$;
-- The shipped mechanism (src/adapters/sql/eviction.rs): a statement-level trigger with its
-- transition table; a save that set tower_sessions.quiet gets its keys appended to the log.
CREATE TRIGGER u AFTER UPDATE ON s_trig REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION s_evict('ch');
CREATE TRIGGER d AFTER DELETE ON s_trig REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION s_evict('ch');
-- Alternatives: the save's own statement appends to the log (a CTE), and a trigger that its
-- WHEN condition skips for such saves announces every other write.
CREATE TRIGGER u AFTER UPDATE ON s_row FOR EACH ROW
  WHEN (current_setting('tower_sessions.quiet', true) IS DISTINCT FROM 'on') EXECUTE FUNCTION s_evict_row('ch');
CREATE TRIGGER u AFTER UPDATE ON s_stw REFERENCING OLD TABLE AS changed FOR EACH STATEMENT
  WHEN (current_setting('tower_sessions.quiet', true) IS DISTINCT FROM 'on') EXECUTE FUNCTION s_evict('ch');
-- Logical decoding: a publication of the plain table for pgoutput, slots per replica.
DROP PUBLICATION IF EXISTS p_sessions;
CREATE PUBLICATION p_sessions FOR TABLE s_plain WITH (publish = 'update, delete, truncate');
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots;
SELECT count(pg_create_logical_replication_slot(p || g, CASE p WHEN 'td_' THEN 'test_decoding' WHEN 'rl_' THEN 'test_decoding' ELSE 'pgoutput' END))
  FROM unnest(ARRAY['td_', 'po_', 'rl_', 'rp_']) AS p, generate_series(0, 1) AS g;
