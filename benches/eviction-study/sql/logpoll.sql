-- A replica's read of the log: its newest entries through the index, standing for the
-- listener's read by transaction ids (src/adapters/sql/eviction.rs), which carries state.
SELECT key FROM s_log WHERE xid >= (SELECT coalesce(max(xid), 0) - 20 FROM s_log);
\sleep 5 ms
