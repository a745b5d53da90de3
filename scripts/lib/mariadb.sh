# shellcheck shell=bash
# ensure_mariadb: make MYSQL_URL answer, starting (or installing) MariaDB when nothing does.
#
# 1. MYSQL_URL (default mysql://root@127.0.0.1:3306/test) answers: use it (creating the
#    database when the server answers but the database is missing).
# 2. Otherwise install MariaDB with apt if it is missing, start the system server with
#    start-stop-daemon (no systemd needed), and let `root` in from 127.0.0.1 without a password
#    (a fresh Debian install only lets the OS root in, through the socket).
#
# Only a URL without a password is managed; a URL with one must already answer.

mysql_url_part() {
  # $1: url, $2: user|host|port|db
  local rest=${1#*://} auth hostport
  auth=${rest%%@*}; [ "$auth" = "$rest" ] && auth=root
  hostport=${rest#*@}; hostport=${hostport%%/*}
  case $2 in
    user) echo "${auth%%:*}" ;;
    host) echo "${hostport%%:*}" ;;
    port) case $hostport in *:*) echo "${hostport##*:}" ;; *) echo 3306 ;; esac ;;
    db) local db=${rest#*/}; echo "${db%%\?*}" ;;
  esac
}

mysql_answers() {
  # $1: url, $2: database to use ('' for none)
  mysql -h "$(mysql_url_part "$1" host)" -P "$(mysql_url_part "$1" port)" \
    -u "$(mysql_url_part "$1" user)" ${2:+"$2"} -e 'select 1' >/dev/null 2>&1
}

install_mariadb() {
  echo "ensure_mariadb: installing MariaDB with apt" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null
}

start_mariadb() {
  local daemon=/usr/sbin/mariadbd
  [ -x "$daemon" ] || daemon=/usr/sbin/mysqld
  as_root mkdir -p /run/mysqld
  as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  if [ ! -d /var/lib/mysql/mysql ]; then
    as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  fi
  echo "ensure_mariadb: starting $daemon" >&2
  as_root start-stop-daemon --start --oknodo --background --exec "$daemon"
  for _ in $(seq 1 60); do
    as_root mysqladmin --protocol=socket ping >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

# Lets the URL's user (root) in from 127.0.0.1 without a password, through the socket.
open_root_over_tcp() {
  local user=$1
  as_root mysql --protocol=socket -u root -e \
    "CREATE USER IF NOT EXISTS '$user'@'127.0.0.1' IDENTIFIED BY '';
     GRANT ALL PRIVILEGES ON *.* TO '$user'@'127.0.0.1' WITH GRANT OPTION;
     FLUSH PRIVILEGES;" >/dev/null
}

ensure_mariadb() {
  export MYSQL_URL=${MYSQL_URL:-mysql://root@127.0.0.1:3306/test}
  local db user
  db=$(mysql_url_part "$MYSQL_URL" db)
  user=$(mysql_url_part "$MYSQL_URL" user)
  command -v mysql >/dev/null 2>&1 || install_mariadb
  if ! mysql_answers "$MYSQL_URL" ""; then
    [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ] || install_mariadb
    start_mariadb || { echo "ensure_mariadb: MariaDB did not start" >&2; return 1; }
    mysql_answers "$MYSQL_URL" "" || open_root_over_tcp "$user"
  fi
  if ! mysql_answers "$MYSQL_URL" "$db"; then
    mysql -h "$(mysql_url_part "$MYSQL_URL" host)" -P "$(mysql_url_part "$MYSQL_URL" port)" \
      -u "$user" -e "CREATE DATABASE IF NOT EXISTS \`$db\`" >/dev/null 2>&1 || true
  fi
  mysql_answers "$MYSQL_URL" "$db" || {
    echo "ensure_mariadb: MySQL/MariaDB does not answer at $MYSQL_URL" >&2
    return 1
  }
}
