SELECT data FROM pg_logical_slot_get_binary_changes('po_' || :client_id, NULL, NULL, 'proto_version', '1', 'publication_names', 'p_sessions');
\sleep 5 ms
