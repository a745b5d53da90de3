# shellcheck shell=bash
# ensure_postgres: make DATABASE_URL answer, starting (or installing) PostgreSQL when nothing does.
#
# 1. DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) answers: use it.
# 2. A Debian cluster is installed but stopped: start it, and use it if the URL then answers.
# 3. Otherwise (fresh machine, or a cluster that wants a password): install PostgreSQL with apt
#    if it is missing, and start a throwaway cluster with trust auth on a spare loopback port
#    under target/, then point DATABASE_URL at it.

pg_answers() {
  psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

pg_bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

install_postgres() {
  echo "ensure_postgres: installing PostgreSQL with apt" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
}

# Creates the database named in the URL when the server answers for `postgres` but not for it.
create_database_if_missing() {
  local url=$1 base db
  db=${url##*/}; db=${db%%\?*}
  base=${url%/*}/postgres
  if ! pg_answers "$url" && pg_answers "$base"; then
    psql "$base" -qc "CREATE DATABASE \"$db\"" >/dev/null 2>&1 || true
  fi
}

start_debian_cluster() {
  local version
  command -v pg_ctlcluster >/dev/null 2>&1 || return 1
  for version in $(ls /etc/postgresql 2>/dev/null); do
    [ -d "/etc/postgresql/$version/main" ] || continue
    echo "ensure_postgres: starting the PostgreSQL $version cluster" >&2
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
  done
  for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && return 0
    sleep 0.5
  done
  return 1
}

start_private_cluster() {
  local root=$1 bindir port data
  bindir=$(pg_bindir)
  [ -n "$bindir" ] || { install_postgres; bindir=$(pg_bindir); }
  [ -n "$bindir" ] || { echo "ensure_postgres: no PostgreSQL binaries after install" >&2; return 1; }
  port=55432
  data="$root/target/test-postgres"
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"; mkdir -p "$data"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$data"; fi
    run_as_postgres "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 >/dev/null
  fi
  echo "ensure_postgres: starting a throwaway PostgreSQL on 127.0.0.1:$port ($data)" >&2
  run_as_postgres "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k /tmp -c max_connections=300" start >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/test"
  create_database_if_missing "$DATABASE_URL"
}

# initdb and postgres refuse to run as root.
run_as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_postgres() {
  local root=$1
  export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
  # The suite also starts clusters of its own (initdb, pg_ctl): the server binaries must be here
  # even when DATABASE_URL points elsewhere.
  if ! command -v psql >/dev/null 2>&1 || [ -z "$(pg_bindir)" ]; then install_postgres; fi
  create_database_if_missing "$DATABASE_URL"
  pg_answers "$DATABASE_URL" && return 0
  start_debian_cluster && create_database_if_missing "$DATABASE_URL" && pg_answers "$DATABASE_URL" && return 0
  start_private_cluster "$root"
  pg_answers "$DATABASE_URL" || {
    echo "ensure_postgres: PostgreSQL does not answer at $DATABASE_URL" >&2
    return 1
  }
}
