# shellcheck shell=bash
# ensure_citus ROOT: a Citus cluster (a coordinator and two workers, plus a spare worker not yet
# in it) on loopback, built from source, for tests/citus_*.rs. Exports CITUS_URL (the
# coordinator's `test` database) and CITUS_SPARE_WORKER (host:port of the spare, which
# tests/citus_rebalance.rs adds to the cluster and drains again). stop_citus ROOT stops them.
#
# Citus is in no archive this project can reach, so it is built from CITUS_SOURCE, a folder with
# `citus-<version>.tar.gz` and the patches (`*.patch`, applied with `patch -p1`) that the
# installed PostgreSQL's headers need; ../shared/engines/citus/README.md says what they are.
#
# 1. Build dependencies (the server headers of the newest installed PostgreSQL, lz4, zstd,
#    krb5) are installed with apt when missing.
# 2. Citus is built in target/citus/source and installed into that PostgreSQL (about 5 minutes
#    on 2 cores), unless its citus.so already says it is that version.
# 3. Four clusters are made afresh with initdb (a run never inherits an earlier run's shards)
#    and started as `postgres`, on the first free ports from 9700. Their data goes to
#    target/citus/nodes when `postgres` can reach the checkout, or else to a directory of this
#    checkout's own under /var/tmp (a checkout under /root is closed to other users).
#
# Needs scripts/lib/postgres.sh sourced first (as_root, run_as_postgres, pg_bindir, pg_answers,
# port_is_free, private_state_dir).

citus_install_build_deps() {
  local major=$1 missing=() package
  for package in "postgresql-server-dev-$major" liblz4-dev libzstd-dev libkrb5-dev gcc make; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "ensure_citus: installing ${missing[*]} with apt" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Builds and installs Citus from $2 (CITUS_SOURCE) into the PostgreSQL of bin directory $3.
citus_build() {
  local root=$1 source=$2 bindir=$3 tarballs tarball version libdir work patch
  tarballs=("$source"/citus-*.tar.gz)
  tarball=${tarballs[-1]}
  [ -f "$tarball" ] || { echo "ensure_citus: no citus-*.tar.gz in $source" >&2; return 1; }
  version=$(basename "$tarball" .tar.gz); version=${version#citus-}
  libdir=$("$bindir/pg_config" --pkglibdir 2>/dev/null || true)
  # citus.so carries its version as `Citus <version>` (what citus_version() reports).
  if [ -n "$libdir" ] && grep -aqF "Citus $version" "$libdir/citus.so" 2>/dev/null; then
    echo "ensure_citus: Citus $version is installed already" >&2
    return 0
  fi
  citus_install_build_deps "$(basename "$(dirname "$bindir")")" || return 1
  echo "ensure_citus: building Citus $version from $tarball (about 5 minutes on 2 cores)" >&2
  work="$root/target/citus/source"
  rm -rf "$work"; mkdir -p "$work"
  tar -xzf "$tarball" -C "$work"
  (
    cd "$work/citus-$version" || exit 1
    for patch in "$source"/*.patch; do
      [ -f "$patch" ] || continue
      patch -p1 -s <"$patch" || exit 1
    done
    # The server's own pg_config, not whichever one PATH finds first.
    PG_CONFIG="$bindir/pg_config" ./configure --without-libcurl >"$work/configure.log" 2>&1 &&
      make -j2 >"$work/make.log" 2>&1 &&
      as_root make install >"$work/install.log" 2>&1
  ) || { echo "ensure_citus: building Citus failed; see $work/*.log" >&2; return 1; }
}

# Where the nodes' data lives (see 3. above).
citus_nodes_dir() {
  local root=$1
  mkdir -p "$root/target/citus"
  if [ "$(id -u)" -ne 0 ] || runuser -u postgres -- test -x "$root/target/citus"; then
    echo "$root/target/citus/nodes"
  else
    private_state_dir citus "$root" nodes
  fi
}

# Stops the nodes a run of ensure_citus started (their data dirs stay until the next run).
stop_citus() {
  local root=$1 dir data bindir
  bindir=$(pg_bindir)
  dir=$(citus_nodes_dir "$root")
  for data in "$dir"/*/data; do
    [ -f "$data/PG_VERSION" ] || continue
    if run_as_postgres "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      run_as_postgres "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
    fi
  done
}

# Makes and starts one node on $3 under $2; $1 is the bin directory.
citus_start_node() {
  local bindir=$1 dir=$2 port=$3
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; fi
  chmod 700 "$dir"
  run_as_postgres "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  # wal_level = logical: a shard move copies the shard, then follows its writes by logical
  # replication, so a rebalance never blocks the clients' writes.
  cat >>"$dir/data/postgresql.conf" <<EOF
# Written by scripts/lib/citus.sh.
shared_preload_libraries = 'citus'
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
wal_level = logical
EOF
  run_as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null || {
    echo "ensure_citus: the node on port $port did not start; see $dir/server.log" >&2
    return 1
  }
  psql "postgres://postgres@127.0.0.1:$port/postgres" -qc 'CREATE DATABASE test' >/dev/null &&
    psql "postgres://postgres@127.0.0.1:$port/test" -qc 'CREATE EXTENSION citus' >/dev/null
}

ensure_citus() {
  local root=$1 source=${CITUS_SOURCE:?ensure_citus needs CITUS_SOURCE} bindir dir port ports=() node
  bindir=$(pg_bindir)
  [ -n "$bindir" ] || { echo "ensure_citus: no PostgreSQL server is installed" >&2; return 1; }
  citus_build "$root" "$source" "$bindir" || return 1
  stop_citus "$root"
  dir=$(citus_nodes_dir "$root")
  as_root rm -rf "$dir"
  mkdir -p "$dir"
  for port in $(seq 9700 9799); do
    port_is_free "$port" && ports+=("$port")
    [ ${#ports[@]} -eq 4 ] && break
  done
  [ ${#ports[@]} -eq 4 ] || { echo "ensure_citus: fewer than 4 free ports in 9700-9799" >&2; return 1; }
  echo "ensure_citus: starting a Citus coordinator on ${ports[0]}, workers on ${ports[1]} and ${ports[2]}, a spare worker on ${ports[3]} ($dir)" >&2
  for port in "${ports[@]}"; do
    citus_start_node "$bindir" "$dir/$port" "$port" || return 1
  done
  export CITUS_URL="postgres://postgres@127.0.0.1:${ports[0]}/test"
  psql "$CITUS_URL" -qAt -v ON_ERROR_STOP=1 >/dev/null <<EOF || { echo "ensure_citus: registering the nodes failed" >&2; return 1; }
SELECT citus_set_coordinator_host('127.0.0.1', ${ports[0]});
SELECT citus_add_node('127.0.0.1', ${ports[1]});
SELECT citus_add_node('127.0.0.1', ${ports[2]});
EOF
  export CITUS_SPARE_WORKER="127.0.0.1:${ports[3]}"
  node=$(psql "$CITUS_URL" -Atc 'SELECT citus_version()')
  echo "ensure_citus: $node at $CITUS_URL" >&2
}
