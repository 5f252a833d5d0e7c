#!/usr/bin/env bash
# A throwaway PostgreSQL for the state-store tests: Debian's package, a temp cluster on 127.0.0.1 only.
#
#   eval "$(bash .ci/postgres.sh start DIR)"   # prints `export ONMODEL_TEST_POSTGRES_URL=...`
#   bash .ci/postgres.sh stop DIR              # stops the server and removes DIR
#
# DIR must be a new or empty folder. The binaries come from /usr/lib/postgresql/<version>/bin; when none are
# there, Debian's `postgresql` package is installed (root, non-interactive). initdb refuses to run as root, so as
# root the cluster belongs to the `postgres` user (created by the package, or here when missing).
set -euo pipefail

command="${1:-}"
dir="${2:-}"
if [[ -z "$command" || -z "$dir" ]]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi

pg_bin() {
  # The newest installed major version.
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_owner() {
  # Run a command as the cluster's owner: `postgres` when we are root, else ourselves.
  if [[ "$(id -u)" == 0 ]]; then
    su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
  else
    "$@"
  fi
}

start() {
  local bin
  bin="$(pg_bin)"
  if [[ -z "$bin" ]]; then
    if [[ "$(id -u)" != 0 ]]; then
      echo "error: no PostgreSQL binaries under /usr/lib/postgresql and not root: apt-get install postgresql" >&2
      exit 1
    fi
    echo "installing Debian's postgresql package ..." >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql </dev/null >&2
    bin="$(pg_bin)"
  fi
  if [[ "$(id -u)" == 0 ]] && ! getent passwd postgres >/dev/null; then
    useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
  fi
  mkdir -p "$dir"
  [[ "$(id -u)" == 0 ]] && chown postgres "$dir"
  chmod 700 "$dir"
  if ! as_owner test -w "$dir"; then
    echo "error: the postgres user cannot reach $dir (a parent folder is closed to it); use a folder under /tmp" >&2
    exit 1
  fi

  local port password
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  printf '%s\n' "$password" >"$dir/pwfile"
  [[ "$(id -u)" == 0 ]] && chown postgres "$dir/pwfile"

  as_owner "$bin/initdb" -D "$dir/data" -U onmodel --pwfile="$dir/pwfile" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  rm -f "$dir/pwfile"
  # 127.0.0.1 only, the socket inside DIR (not /var/run/postgresql, which may not exist or be writable).
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off" start >&2 \
    || { cat "$dir/server.log" >&2; exit 1; }
  PGPASSWORD="$password" "$bin/psql" -q -h 127.0.0.1 -p "$port" -U onmodel -d postgres \
    -c "CREATE DATABASE onmodel_test" >&2
  echo "$port" >"$dir/port"
  echo "export ONMODEL_TEST_POSTGRES_URL=postgresql+psycopg://onmodel:$password@127.0.0.1:$port/onmodel_test"
}

stop() {
  local bin
  bin="$(pg_bin)"
  if [[ -n "$bin" && -f "$dir/data/postmaster.pid" ]]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  fi
  rm -rf "$dir"
}

case "$command" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
