SELECT key FROM s_log WHERE xid >= (SELECT coalesce(max(xid), 0) - 20 FROM s_log);
\sleep 5 ms
