#!/usr/bin/env bash
# Makes sure a PostgreSQL server is running for the tests and prints its DSN on the last line.
#
# As root (CI): starts the distribution's cluster (installing PostgreSQL with apt when missing)
# and creates the role and database `hitl`/`hitl_test`. As another user: initdb into .pgdata/
# (once) and runs that server on a loopback port. Set HITL_TEST_POSTGRES_DSN to use a server of
# your own instead; then this script is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."

ROLE=hitl
PASSWORD=hitl
DB=hitl_test

if [ "$(id -u)" = 0 ]; then
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  pg_ctlcluster "$version" main status >/dev/null 2>&1 || pg_ctlcluster "$version" main start >&2
  port="$(pg_conftool -s "$version" main show port 2>/dev/null || echo 5432)"
  psql_() { runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qtA "$@"; }
  for _ in $(seq 50); do psql_ -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
  if [ "$(psql_ -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    psql_ -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD' CREATEDB" >&2
  fi
  # CREATEROLE: tests create a SELECT-only auditor role of their own (the offline audit CLI).
  psql_ -c "ALTER ROLE $ROLE CREATEROLE" >&2
  if [ "$(psql_ -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    psql_ -c "CREATE DATABASE $DB OWNER $ROLE" >&2
  fi
  echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$port/$DB"
  exit 0
fi

bindir="$(pg_config --bindir 2>/dev/null || true)"
[ -x "$bindir/initdb" ] || bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ ! -x "$bindir/initdb" ]; then
  echo "PostgreSQL is not installed: sudo apt-get install postgresql" >&2
  exit 1
fi
data="$PWD/.pgdata"
port="${HITL_PGPORT:-55432}"
if [ ! -f "$data/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  echo "$PASSWORD" >"$pwfile"
  "$bindir/initdb" -D "$data" -U "$ROLE" --pwfile="$pwfile" -A scram-sha-256 >&2
  rm -f "$pwfile"
fi
if ! "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $data" start >&2
fi
export PGPASSWORD="$PASSWORD"
if [ "$("$bindir/psql" -h 127.0.0.1 -p "$port" -U "$ROLE" -d postgres -qtA \
  -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$ROLE" "$DB" >&2
fi
echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$port/$DB"
