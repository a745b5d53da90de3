# shellcheck shell=bash
# ensure_mariadb ROOT: make MYSQL_URL answer, starting (or installing) MariaDB when nothing does.
#
# 1. MYSQL_URL (default mysql://root@127.0.0.1:3306/test) answers: use it (creating the
#    database when the server answers but the database is missing).
# 2. Otherwise install MariaDB with apt if it is missing. Then, when the URL names the system
#    server's port (3306 unless /etc/mysql says otherwise), start the system server (no systemd
#    needed; with --skip-name-resolve, so that a client from 127.0.0.1 is not `localhost`) and
#    let the URL's user in from 127.0.0.1 without a password (a fresh Debian install only lets
#    the OS root in, through the socket). A system server that resolves names (one systemd
#    started at install, with Debian's config) is left alone: a private server on
#    127.0.0.1:53306 is started as in 3., and MYSQL_URL pointed there.
# 3. When the URL names another port (the system server may be running on 3306 meanwhile),
#    start a private server on the URL's host and port, with its data, socket and log in
#    /var/tmp/ts-mariadb-<key>-<port>, keyed by the checkout's path. One left running by an
#    earlier run is used again.
#
# mariadbd refuses to run as root: started as root it gets `--user=mysql` (the user the package
# creates), and its directories belong to `mysql`.
#
# Only a loopback URL without a password is managed; any other must already answer.
# Needs scripts/lib/postgres.sh sourced first (as_root, url_part, is_loopback, port_is_free,
# private_state_dir).

mysql_url_part() {
  # $1: url, $2: user|host|port|db
  local part
  part=$(url_part "$1" "$2" 3306)
  if [ "$2" = user ]; then part=${part:-root}; fi
  echo "$part"
}

# Debian 12 names the programs mariadb, mariadb-admin, ...; older packages and other
# distributions only mysql, mysqladmin, ...
mariadb_tool() {
  if command -v "mariadb${1:-}" >/dev/null 2>&1; then echo "mariadb${1:-}"; else echo "mysql${1:-}"; fi
}

mariadb_daemon() {
  local daemon
  for daemon in /usr/sbin/mariadbd /usr/sbin/mysqld; do
    if [ -x "$daemon" ]; then echo "$daemon"; return 0; fi
  done
  return 1
}

mysql_answers() {
  # $1: url, $2: database to use ('' for none). Over TCP, as the tests connect: `-h localhost`
  # alone would take the socket.
  "$(mariadb_tool)" --protocol=tcp -h "$(mysql_url_part "$1" host)" -P "$(mysql_url_part "$1" port)" \
    -u "$(mysql_url_part "$1" user)" ${2:+"$2"} -e 'select 1' >/dev/null 2>&1
}

install_mariadb() {
  echo "ensure_mariadb: installing MariaDB with apt" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null
}

# An option of the system server's configuration ($1, e.g. port), or the default $2.
system_mariadb_option() {
  local value=''
  if command -v my_print_defaults >/dev/null 2>&1; then
    value=$(my_print_defaults mysqld 2>/dev/null | sed -n "s/^--$1=//p" | tail -n 1)
  fi
  echo "${value:-$2}"
}

# mariadb_over_socket RUN SOCKET ADMIN TOOL ARGS...: runs the client tool mariadb$TOOL ('' or
# -admin) through the socket as the database user ADMIN, who is the OS user running it
# (unix_socket auth): RUN is as_root for the system server's root, env for a private server's
# own user.
mariadb_over_socket() {
  local run=$1 socket=$2 admin=$3 tool=$4
  shift 4
  "$run" "$(mariadb_tool "$tool")" --protocol=socket --socket="$socket" -u "$admin" "$@"
}

# wait_for_mariadb RUN SOCKET ADMIN
wait_for_mariadb() {
  for _ in $(seq 1 60); do
    mariadb_over_socket "$@" -admin ping >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

start_system_mariadb() {
  local daemon socket pidfile
  daemon=$(mariadb_daemon) || return 1
  socket=$(system_mariadb_option socket /run/mysqld/mysqld.sock)
  pidfile=$(system_mariadb_option pid-file /run/mysqld/mysqld.pid)
  # Made by systemd's tmpfiles on a booted machine; absent in a container or chroot.
  as_root mkdir -p /run/mysqld
  as_root chown mysql:mysql /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    as_root "$(mariadb_tool -install-db)" --user=mysql --datadir=/var/lib/mysql >/dev/null
  fi
  if mariadb_over_socket as_root "$socket" root -admin ping >/dev/null 2>&1; then
    echo "ensure_mariadb: the system server runs already" >&2
    return 0
  fi
  echo "ensure_mariadb: starting the system server ($daemon --user=mysql --skip-name-resolve)" >&2
  # By its pid file: a private server of a checkout runs the same binary. Without
  # --skip-name-resolve (Debian's config lacks it) a TCP client from 127.0.0.1 is `localhost`,
  # where root is the OS root through the socket only, and the grant below would not apply.
  as_root start-stop-daemon --start --oknodo --background --pidfile "$pidfile" --exec "$daemon" -- \
    --user=mysql --skip-name-resolve
  wait_for_mariadb as_root "$socket" root
}

# open_user_over_tcp USER FROM RUN SOCKET ADMIN: lets USER in from the host FROM without a
# password.
open_user_over_tcp() {
  local user=$1 from=$2
  shift 2
  mariadb_over_socket "$@" '' -e \
    "CREATE USER IF NOT EXISTS '$user'@'$from' IDENTIFIED BY '';
     GRANT ALL PRIVILEGES ON *.* TO '$user'@'$from' WITH GRANT OPTION;
     FLUSH PRIVILEGES;" >/dev/null
}

start_private_mariadb() {
  local root=$1 host=$2 port=$3 user=$4 daemon dir admin run_as=()
  daemon=$(mariadb_daemon) || return 1
  [ "$host" = localhost ] && host=127.0.0.1
  dir=$(private_state_dir mariadb "$root" "$port")
  admin=$(id -un)
  # The OS user that starts it administers it through the socket (unix_socket auth).
  if [ "$(id -u)" -eq 0 ]; then run_as=(--user=mysql); fi
  if [ -S "$dir/mysqld.sock" ] && mariadb_over_socket env "$dir/mysqld.sock" "$admin" -admin ping >/dev/null 2>&1; then
    echo "ensure_mariadb: using the private MariaDB already running on $host:$port ($dir)" >&2
  else
    port_is_free "$port" || {
      echo "ensure_mariadb: port $port is taken by something that does not answer at $MYSQL_URL" >&2
      return 1
    }
    mkdir -p "$dir"
    # Debian's server defaults (utf8mb4, no name resolution), on the URL's host and port.
    cat >"$dir/my.cnf" <<EOF
[mysqld]
datadir = $dir/data
socket = $dir/mysqld.sock
pid-file = $dir/mysqld.pid
log-error = $dir/error.log
port = $port
bind-address = $host
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
EOF
    if [ "$(id -u)" -eq 0 ]; then chown -R mysql:mysql "$dir"; fi
    if [ ! -d "$dir/data/mysql" ]; then
      "$(mariadb_tool -install-db)" --defaults-file="$dir/my.cnf" "${run_as[@]}" \
        --auth-root-socket-user="$admin" --skip-test-db >"$dir/install-db.log" 2>&1 || {
        echo "ensure_mariadb: mariadb-install-db failed; see $dir/install-db.log" >&2
        return 1
      }
    fi
    echo "ensure_mariadb: starting a private MariaDB on $host:$port ($dir)" >&2
    start-stop-daemon --start --background --pidfile "$dir/mysqld.pid" --exec "$daemon" -- \
      --defaults-file="$dir/my.cnf" "${run_as[@]}"
    wait_for_mariadb env "$dir/mysqld.sock" "$admin" || {
      echo "ensure_mariadb: the private MariaDB did not start; see $dir/error.log" >&2
      return 1
    }
  fi
  # A private server on loopback: the user may come from any local address.
  open_user_over_tcp "$user" '%' env "$dir/mysqld.sock" "$admin"
}

ensure_mariadb() {
  local root=${1:-$PWD} db user host port socket
  export MYSQL_URL=${MYSQL_URL:-mysql://root@127.0.0.1:3306/test}
  db=$(mysql_url_part "$MYSQL_URL" db)
  user=$(mysql_url_part "$MYSQL_URL" user)
  host=$(mysql_url_part "$MYSQL_URL" host)
  port=$(mysql_url_part "$MYSQL_URL" port)
  command -v mariadb >/dev/null 2>&1 || command -v mysql >/dev/null 2>&1 || install_mariadb
  if ! mysql_answers "$MYSQL_URL" ""; then
    case $MYSQL_URL in *://*:*@*)
      echo "ensure_mariadb: MySQL/MariaDB does not answer at $MYSQL_URL (a URL with a password is not managed)" >&2
      return 1 ;;
    esac
    is_loopback "$host" || {
      echo "ensure_mariadb: MySQL/MariaDB does not answer at $MYSQL_URL (not a loopback address: nothing is started)" >&2
      return 1
    }
    mariadb_daemon >/dev/null || install_mariadb
    if [ "$port" = "$(system_mariadb_option port 3306)" ]; then
      socket=$(system_mariadb_option socket /run/mysqld/mysqld.sock)
      # The grant is for 127.0.0.1, which a server resolving names (one systemd started with
      # Debian's config) calls `localhost`, where root is the OS root through the socket only:
      # such a server is left as it is, and a private one used instead.
      if start_system_mariadb && ! mysql_answers "$MYSQL_URL" "" &&
        [ "$(mariadb_over_socket as_root "$socket" root '' -N -e 'select @@skip_name_resolve')" = 1 ]; then
        open_user_over_tcp "$user" 127.0.0.1 as_root "$socket" root || true
      fi
      if ! mysql_answers "$MYSQL_URL" ""; then
        echo "ensure_mariadb: the system server does not let $user in over TCP; using a private one on 127.0.0.1:53306" >&2
        host=127.0.0.1; port=53306
        export MYSQL_URL="mysql://$user@$host:$port/$db"
        start_private_mariadb "$root" "$host" "$port" "$user" || return 1
      fi
    else
      start_private_mariadb "$root" "$host" "$port" "$user" || return 1
    fi
  fi
  if ! mysql_answers "$MYSQL_URL" "$db"; then
    "$(mariadb_tool)" --protocol=tcp -h "$host" -P "$port" -u "$user" \
      -e "CREATE DATABASE IF NOT EXISTS \`$db\`" >/dev/null 2>&1 || true
  fi
  mysql_answers "$MYSQL_URL" "$db" || {
    echo "ensure_mariadb: MySQL/MariaDB does not answer at $MYSQL_URL" >&2
    return 1
  }
}
