# shellcheck shell=bash
# ensure_pgbouncer: start PgBouncer in transaction pooling mode in front of DATABASE_URL, on a
# spare loopback port, and export PGBOUNCER_URL (the same database, through PgBouncer).
#
# The store needs PgBouncer 1.21 or later in transaction mode: sqlx prepares named statements
# and sends Parse and Bind in separate round trips, which only PgBouncer's protocol-level
# prepared statement support (`max_prepared_statements`, 1.21+) carries across server
# connections (SCALING.md has what older versions do). So:
#
# 1. the Debian package `pgbouncer` is installed with apt when missing;
# 2. if it is older than 1.21 (Debian 12 ships 1.18), PgBouncer is built once from the source
#    package of Debian stable (1.24 in Debian 13), fetched with apt through a private source
#    list under target/ (the machine's apt sources are left alone), into target/pgbouncer/build.
#
# PgBouncer refuses to run as root, so as root it runs as `postgres` (the user the PostgreSQL
# packages create). Its ini file, user list, log and pid file (and a copy of a built binary) go to
# a directory of this checkout's own under /tmp, which `postgres` can reach wherever the checkout
# is (a clone under /root is not readable by other users); the ini is also copied to
# target/pgbouncer/pgbouncer.ini for reading. A PgBouncer this script started before is stopped
# first (by the pid in its pid file).
#
# Needs scripts/lib/postgres.sh sourced first (as_root, pg_answers, url_part).
#
# PGBOUNCER_URL, when set, only chooses the port (on 127.0.0.1); the database is DATABASE_URL's.
# PGBOUNCER_POOL_MODE=session|statement tries another mode by hand.

MIN_PGBOUNCER=1.21

version_of() {
  "$1" --version 2>/dev/null | sed -n 's/^PgBouncer \([0-9.]*\).*/\1/p' | head -n 1
}

at_least() {
  [ -n "$1" ] && [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

install_pgbouncer() {
  echo "ensure_pgbouncer: installing PgBouncer with apt" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
}

# The Debian mirror the machine's apt already uses (deb822 `.sources` or one-line `.list`
# entries), leaving out the security archive.
debian_mirror() {
  {
    grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break }}'
  } | grep -v -- '-security' | head -n 1
}

# Builds PgBouncer from Debian stable's source package into $1/build; prints the binary.
build_pgbouncer() {
  local dir=$1 work="$1/source" apt_opts tarball
  if at_least "$(version_of "$dir/build/bin/pgbouncer")" "$MIN_PGBOUNCER"; then
    echo "$dir/build/bin/pgbouncer"
    return 0
  fi
  echo "ensure_pgbouncer: building PgBouncer from Debian stable's source package (once)" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    gcc make pkg-config libevent-dev libssl-dev libc-ares-dev >/dev/null
  rm -rf "$work"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  local mirror
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || { echo "ensure_pgbouncer: no Debian mirror in the machine's apt sources" >&2; return 1; }
  echo "deb-src $mirror stable main" >"$work/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "Debug::NoLocking=1")
  apt-get "${apt_opts[@]}" update -qq >&2
  (cd "$work" && apt-get "${apt_opts[@]}" source --download-only pgbouncer >/dev/null 2>&1)
  tarball=("$work"/pgbouncer_*.orig.tar.gz)
  [ -f "${tarball[0]}" ] || { echo "ensure_pgbouncer: could not fetch PgBouncer's source package" >&2; return 1; }
  tar -xzf "${tarball[0]}" -C "$work"
  (
    cd "$work"/pgbouncer-*/ &&
      ./configure --prefix="$dir/build" --without-pam --without-systemd >"$work/configure.log" 2>&1 &&
      make -j2 >"$work/make.log" 2>&1 &&
      make install >"$work/install.log" 2>&1
  ) || { echo "ensure_pgbouncer: building PgBouncer failed; see $work/*.log" >&2; return 1; }
  echo "$dir/build/bin/pgbouncer"
}

port_is_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

spare_port() {
  local port
  for port in $(seq 16432 16531); do
    if port_is_free "$port"; then echo "$port"; return 0; fi
  done
  return 1
}

stop_our_pgbouncer() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

# Runs PgBouncer as a user it accepts: it refuses root.
run_as_pgbouncer_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

write_pgbouncer_ini() {
  local dir=$1 port=$2 upstream_host=$3 upstream_port=$4 mode=$5
  cat >"$dir/userlist.txt" <<EOF
"postgres" ""
EOF
  cat >"$dir/pgbouncer.ini" <<EOF
;; Written by scripts/lib/pgbouncer.sh for the test suite.
[databases]
* = host=$upstream_host port=$upstream_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = $mode
;; sqlx prepares named statements (a cache of 100 per connection): PgBouncer renames them per
;; server connection and prepares them again wherever a client's Bind lands.
max_prepared_statements = 200
max_client_conn = 2000
default_pool_size = 20
max_db_connections = 40
;; sqlx sends extra_float_digits at start-up; PgBouncer does not track it.
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
}

ensure_pgbouncer() {
  local root=$1 dir bin port rest authority hostport upstream_host upstream_port db mode
  mkdir -p "$root/target/pgbouncer"
  dir="${TMPDIR:-/tmp}/ts-pgbouncer-$(printf '%s' "$root" | cksum | cut -d ' ' -f 1)"
  mkdir -p "$dir"
  stop_our_pgbouncer "$dir/pgbouncer.pid"
  command -v pgbouncer >/dev/null 2>&1 || install_pgbouncer
  bin=$(command -v pgbouncer || true)
  if ! at_least "$(version_of "$bin")" "$MIN_PGBOUNCER"; then
    echo "ensure_pgbouncer: PgBouncer $(version_of "$bin") is older than $MIN_PGBOUNCER" >&2
    bin=$(build_pgbouncer "$root/target/pgbouncer") || return 1
    install -m 755 "$bin" "$dir/pgbouncer"
    bin="$dir/pgbouncer"
  fi
  if [ -n "${PGBOUNCER_URL:-}" ]; then
    # The port asked for (one no other checkout will pick from the spare range).
    port=$(url_part "$PGBOUNCER_URL" port 6432)
    port_is_free "$port" || { echo "ensure_pgbouncer: port $port (PGBOUNCER_URL) is taken; using a spare one" >&2; port=''; }
  fi
  if [ -z "${port:-}" ]; then
    port=$(spare_port) || { echo "ensure_pgbouncer: no spare port in 16432-16531" >&2; return 1; }
  fi

  # postgres://user[:password]@host[:port]/db[?params]
  rest=${DATABASE_URL#*://}
  authority=${rest%%/*}
  hostport=${authority##*@}
  upstream_host=${hostport%%:*}
  upstream_port=5432
  if [ "$hostport" != "$upstream_host" ]; then upstream_port=${hostport##*:}; fi
  db=${rest#*/}
  db=${db%%\?*}
  mode=${PGBOUNCER_POOL_MODE:-transaction}

  write_pgbouncer_ini "$dir" "$port" "$upstream_host" "$upstream_port" "$mode"
  cp "$dir/pgbouncer.ini" "$root/target/pgbouncer/pgbouncer.ini"
  : >"$dir/pgbouncer.log"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir" "$dir"/pgbouncer.* "$dir/userlist.txt"; fi

  echo "ensure_pgbouncer: starting PgBouncer $(version_of "$bin") ($mode pooling) on 127.0.0.1:$port" >&2
  run_as_pgbouncer_user "$bin" -d "$dir/pgbouncer.ini" || {
    echo "ensure_pgbouncer: PgBouncer did not start; see $dir/pgbouncer.log" >&2
    return 1
  }
  export PGBOUNCER_URL="postgres://postgres@127.0.0.1:$port/$db"
  for _ in $(seq 1 50); do
    pg_answers "$PGBOUNCER_URL" && return 0
    sleep 0.1
  done
  echo "ensure_pgbouncer: PgBouncer does not answer at $PGBOUNCER_URL; see $dir/pgbouncer.log" >&2
  return 1
}
