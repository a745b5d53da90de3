\set n random(1, 1000)
UPDATE s_plain SET data = decode(md5(random()::text) || repeat('ab', 134), 'hex'), expiry = now() + interval '1 day', version = version + 1 WHERE id = 'k' || :n AND expiry > now();
