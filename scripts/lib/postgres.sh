# shellcheck shell=bash
# ensure_postgres: make DATABASE_URL answer, starting (or installing) PostgreSQL when nothing does.
#
# 1. DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) answers: use it.
# 2. A Debian cluster configured for the URL's port is installed but stopped: start it (with
#    pg_ctlcluster, no systemd needed) and use it if the URL then answers. A cluster fresh from
#    apt wants a password over TCP, so it usually does not: then it is stopped again, as found.
# 3. Otherwise (fresh machine, a cluster that wants a password, or a URL naming another port):
#    install PostgreSQL with apt if it is missing, and start a private cluster with trust auth on
#    the URL's host and port, or on 55432 when that port is taken or belongs to a Debian cluster
#    (DATABASE_URL is then pointed there). Its data lives in /var/tmp/ts-postgres-<key>-<port>,
#    owned by `postgres`, and keyed by the checkout's path: the server runs as `postgres`, which
#    cannot enter a checkout under /root, and parallel checkouts must not share a cluster.
#    A private cluster left running by an earlier run is used again.
#
# Only a loopback URL (127.x.x.x, localhost) gets a server started; any other must answer.
# Also used by scripts/bench and benches/eviction-study/run (start_tuned_cluster, pg_bindir,
# install_postgres, run_as_postgres, pg_answers).

pg_answers() {
  psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# initdb and postgres refuse to run as root. From /: `postgres` may not enter the working
# directory (a checkout under /root), and the tools complain when they cannot.
run_as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# The newest server's bin directory. postgresql-client alone also makes a bin directory (psql):
# only one with initdb counts.
pg_bindir() {
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    if [ -x "$bin/initdb" ]; then echo "$bin"; fi
  done | sort -V | tail -n 1
}

install_postgres() {
  echo "ensure_postgres: installing PostgreSQL with apt" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
}

# url_part URL user|host|port|db DEFAULT_PORT, for scheme://user[:password]@host[:port]/db[?params]
# (no IPv6 literals). Also used by mariadb.sh.
url_part() {
  local rest=${1#*://} auth hostport db
  auth=${rest%%/*}
  hostport=${auth##*@}
  if [ "$hostport" = "$auth" ]; then auth=''; else auth=${auth%@*}; fi
  case $2 in
    user) echo "${auth%%:*}" ;;
    host) echo "${hostport%%:*}" ;;
    port) case $hostport in *:*) echo "${hostport##*:}" ;; *) echo "$3" ;; esac ;;
    db) db=${rest#*/}; [ "$db" = "$rest" ] && db=''; echo "${db%%\?*}" ;;
  esac
}

is_loopback() {
  case $1 in 127.*|localhost) return 0 ;; *) return 1 ;; esac
}

port_is_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Where a private server of this checkout keeps its data: $1 postgres|mariadb, $2 root, $3 port.
# /var/tmp is open to every user (the server's own, `postgres` or `mysql`, too) and survives a
# reboot, so a cluster is initialised once.
private_state_dir() {
  echo "/var/tmp/ts-$1-$(printf '%s' "$2" | cksum | cut -d ' ' -f 1)-$3"
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

# The port a Debian cluster's postgresql.conf sets ($1: its directory under /etc/postgresql).
debian_cluster_port() {
  sed -n 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p' "$1/postgresql.conf" 2>/dev/null |
    tail -n 1
}

# Starts a stopped Debian cluster configured for the URL's port; stops it again when the URL
# still does not answer (a cluster fresh from apt only lets `postgres` in over TCP with a password).
start_debian_cluster() {
  local url=$1 port conf version name
  port=$(url_part "$url" port 5432)
  command -v pg_ctlcluster >/dev/null 2>&1 || return 1
  for conf in /etc/postgresql/*/*/; do
    conf=${conf%/}
    if [ "$(debian_cluster_port "$conf")" != "$port" ]; then continue; fi
    version=$(basename "$(dirname "$conf")"); name=$(basename "$conf")
    # Running already, and the URL does not answer: not ours to restart.
    as_root pg_ctlcluster "$version" "$name" status >/dev/null 2>&1 && return 1
    echo "ensure_postgres: starting the PostgreSQL $version/$name cluster" >&2
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start >/dev/null 2>&1 || return 1
    create_database_if_missing "$url"
    pg_answers "$url" && return 0
    echo "ensure_postgres: $version/$name does not let $url in (it wants a password); stopping it again" >&2
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" stop >/dev/null 2>&1 || true
    return 1
  done
  return 1
}

# Is the port claimed by an installed Debian cluster (running or not)?
port_of_a_debian_cluster() {
  local conf
  for conf in /etc/postgresql/*/*/; do
    [ "$(debian_cluster_port "${conf%/}")" = "$1" ] && return 0
  done
  return 1
}

pg_running() {
  run_as_postgres "$(pg_bindir)/pg_ctl" -D "$1" status >/dev/null 2>&1
}

# start_tuned_cluster DATA PORT SETTINGS: a trust-auth cluster of its own on 127.0.0.1:PORT, data
# in DATA, SETTINGS appended to its postgresql.conf when it is created (in the file, not on the
# command line, so ALTER SYSTEM can still change them). Nothing when the port answers already.
# The benchmarks' clusters: scripts/bench, benches/eviction-study/run.
start_tuned_cluster() {
  local data=$1 port=$2 settings=$3 bindir
  if pg_answers "postgres://postgres@127.0.0.1:$port/postgres"; then return 0; fi
  command -v psql >/dev/null 2>&1 || install_postgres
  bindir=$(pg_bindir)
  [ -n "$bindir" ] || { install_postgres; bindir=$(pg_bindir); }
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"; mkdir -p "$data"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$data"; fi
    run_as_postgres "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 >/dev/null
    printf '%s\n' "$settings" >>"$data/postgresql.conf"
  fi
  echo "${0##*/}: starting PostgreSQL on 127.0.0.1:$port ($data)" >&2
  run_as_postgres "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k /tmp" start >/dev/null
}

start_private_cluster() {
  local root=$1 bindir host port user db dir
  bindir=$(pg_bindir)
  [ -n "$bindir" ] || { install_postgres; bindir=$(pg_bindir); }
  [ -n "$bindir" ] || { echo "ensure_postgres: no PostgreSQL binaries after install" >&2; return 1; }
  host=$(url_part "$DATABASE_URL" host)
  port=$(url_part "$DATABASE_URL" port 5432)
  user=$(url_part "$DATABASE_URL" user); user=${user:-postgres}
  db=$(url_part "$DATABASE_URL" db); db=${db:-test}
  [ "$host" = localhost ] && host=127.0.0.1
  dir=$(private_state_dir postgres "$root" "$port")
  if ! pg_running "$dir/data" && { ! port_is_free "$port" || port_of_a_debian_cluster "$port"; }; then
    echo "ensure_postgres: port $port is taken or belongs to a Debian cluster; using 127.0.0.1:55432" >&2
    host=127.0.0.1; port=55432
    dir=$(private_state_dir postgres "$root" "$port")
  fi
  export DATABASE_URL="postgres://$user@$host:$port/$db"
  if pg_running "$dir/data"; then
    echo "ensure_postgres: using the private PostgreSQL already running on $host:$port ($dir)" >&2
  else
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; fi
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      # C.UTF-8 is built into Debian's libc: it needs no `locales` package, whatever LANG says.
      run_as_postgres "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    echo "ensure_postgres: starting a private PostgreSQL on $host:$port ($dir)" >&2
    run_as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-p $port -c listen_addresses=$host -k $dir -c max_connections=300" start >/dev/null || {
      echo "ensure_postgres: the private PostgreSQL did not start; see $dir/server.log" >&2
      return 1
    }
  fi
  if [ "$user" != postgres ] && ! pg_answers "postgres://$user@$host:$port/postgres"; then
    psql "postgres://postgres@$host:$port/postgres" -qc "CREATE ROLE \"$user\" LOGIN SUPERUSER" >/dev/null
  fi
  create_database_if_missing "$DATABASE_URL"
}

# A LANG naming a locale the machine lacks (no `locales` package on a fresh install) makes
# initdb refuse to run, here and in the tests' own clusters: fall back to C.UTF-8.
usable_locale() {
  if command -v locale >/dev/null 2>&1 && locale 2>&1 >/dev/null | grep -q .; then
    echo "ensure_postgres: the locale in LANG/LC_* is not installed; using LC_ALL=C.UTF-8" >&2
    export LC_ALL=C.UTF-8
  fi
}

ensure_postgres() {
  local root=$1 host
  export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
  # runuser, start-stop-daemon and the servers live in sbin, which a user's PATH may lack; the
  # suite runs runuser itself.
  case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin:/sbin" ;; esac
  usable_locale
  # The suite also starts clusters of its own (initdb, pg_ctl): the server binaries must be here
  # even when DATABASE_URL points elsewhere.
  if ! command -v psql >/dev/null 2>&1 || [ -z "$(pg_bindir)" ]; then install_postgres; fi
  create_database_if_missing "$DATABASE_URL"
  pg_answers "$DATABASE_URL" && return 0
  host=$(url_part "$DATABASE_URL" host)
  is_loopback "$host" || {
    echo "ensure_postgres: PostgreSQL does not answer at $DATABASE_URL (not a loopback address: nothing is started)" >&2
    return 1
  }
  start_debian_cluster "$DATABASE_URL" && return 0
  start_private_cluster "$root" || return 1
  pg_answers "$DATABASE_URL" || {
    echo "ensure_postgres: PostgreSQL does not answer at $DATABASE_URL" >&2
    return 1
  }
}
