#!/bin/sh
# Entrypoint of the local PostgreSQL image built by scripts/local-images.sh: it stands in
# for the official `postgres` image where no registry is reachable, so it honours the same
# contract that docker-compose.yml and internal/pgserver rely on:
#   - POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
#     POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default: the user name), PGDATA;
#   - `docker run IMAGE -c fsync=off` passes the flags to the server, as the official
#     image does; any other command (`docker run IMAGE bash`) is run as is;
#   - a new data directory is initialised with a temporary server that is then stopped, so
#     "database system is ready to accept connections" is logged twice, which is what
#     testcontainers' postgres wait strategy counts on.
# /docker-entrypoint-initdb.d scripts are not supported: nothing here uses them.
set -eu

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA

# Flags only: the command is the server (same rule as the official image).
case "${1:-}" in
  -*) set -- postgres "$@" ;;
  '') set -- postgres ;;
esac
if [ "$1" != postgres ]; then
  exec "$@"
fi

as_postgres() {
  # setpriv is in util-linux, which every Debian has; gosu is not packaged for minbase.
  setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
}

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chmod 2777 /var/run/postgresql
  run=as_postgres
else
  run=
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "error: POSTGRES_PASSWORD is not set (or set POSTGRES_HOST_AUTH_METHOD=trust), as with the official image" >&2
    exit 1
  fi
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  chmod 644 "$pwfile"
  $run initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" \
    --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  # Reached through a published port, so listen on all of the container's addresses and
  # accept password logins from any of them, as the official image does.
  printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  # Temporary server on the socket only, to create the database before clients can connect.
  # Its log goes to the container's output like the final server's (not to /dev/null).
  $run pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start
  if [ "$db" != postgres ]; then
    $run psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres -qAt \
      -c "CREATE DATABASE \"$(printf '%s' "$db" | sed 's/"/""/g')\"" >/dev/null
  fi
  $run pg_ctl -D "$PGDATA" -m fast -w stop
  echo "PostgreSQL init process complete; ready for start up."
fi

if [ -n "$run" ]; then
  exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
fi
exec "$@"
