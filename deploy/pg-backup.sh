#!/usr/bin/env bash
# Back up or restore the Dagster metadata database (runs, event logs, schedules,
# sensors, dynamic partitions). Connection from the standard libpq variables:
# PGHOST, PGPORT, PGUSER, PGPASSWORD (or ~/.pgpass), PGDATABASE.
#
#   pg-backup.sh dump FILE       custom-format dump (compressed; restore with pg_restore)
#   pg-backup.sh restore FILE    into an EMPTY database (create it first), in one transaction
#
# PG_BIN selects the client binaries (default: from PATH). The client major version
# must be >= the server's. After a restore, run `dagster instance migrate` once with
# the new image before starting the daemon (deploy/README.md, "Backup and restore").
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,11p' "$0" >&2; exit 2; }
bin=${PG_BIN:+$PG_BIN/}
: "${PGDATABASE:?set PGDATABASE}"
case "$1" in
  dump)
    "${bin}pg_dump" --format=custom --no-owner --no-privileges --file "$2"
    "${bin}pg_restore" --list "$2" > /dev/null   # the archive is readable
    ;;
  restore)
    "${bin}pg_restore" --no-owner --no-privileges --exit-on-error --single-transaction \
      --dbname "$PGDATABASE" "$2"
    ;;
  *) sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
