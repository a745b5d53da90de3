SELECT data FROM pg_logical_slot_get_changes('td_' || :client_id, NULL, NULL, 'skip-empty-xacts', '1', 'include-xids', '0') WHERE data LIKE 'table public.s\_plain: %';
\sleep 5 ms
