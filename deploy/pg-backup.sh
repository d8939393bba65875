#!/usr/bin/env bash
# Back up or restore the Dagster metadata database (runs, event logs, schedules,
# sensors, dynamic partitions). Connection from the standard libpq variables:
# PGHOST, PGPORT, PGUSER, PGPASSWORD (or ~/.pgpass), PGDATABASE.
#
#   pg-backup.sh dump FILE       custom-format dump (compressed; restore with pg_restore)
#   pg-backup.sh restore FILE    into an EMPTY database (create it first), in one transaction
#   pg-backup.sh rotate DIR DAYS dump to DIR/dagster-<UTC time>.dump, then delete the
#                                dumps in DIR older than DAYS days (never the newest)
#   pg-backup.sh newest DIR      print the dump in DIR written last (what to restore)
#
# PG_BIN selects the client binaries (default: from PATH). The client major version
# must be >= the server's. After a restore, run `dagster instance migrate` once with
# the new image before starting the daemon (deploy/README.md, "Backup and restore").
set -euo pipefail
usage() { sed -n '2,14p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
bin=${PG_BIN:+$PG_BIN/}
case "$1" in dump|restore|rotate) : "${PGDATABASE:?set PGDATABASE}" ;; esac
case "$1" in
  dump)
    "${bin}pg_dump" --format=custom --no-owner --no-privileges --file "$2"
    "${bin}pg_restore" --list "$2" > /dev/null   # the archive is readable
    ;;
  restore)
    "${bin}pg_restore" --no-owner --no-privileges --exit-on-error --single-transaction \
      --dbname "$PGDATABASE" "$2"
    ;;
  rotate)
    [ $# -eq 3 ] && [ "$3" -ge 1 ] 2>/dev/null || usage
    target="$2/dagster-$(date -u +%Y%m%dT%H%M%SZ).dump"
    # Written under a temporary name: a dump cut short never looks like a backup.
    "$0" dump "$2/.partial.dump"
    mv "$2/.partial.dump" "$target"
    find "$2" -maxdepth 1 -name 'dagster-*.dump' ! -newermt "$3 days ago" ! -path "$target" \
      -print -delete
    echo "backup $target"
    ;;
  newest)
    ls -1t "$2"/dagster-*.dump | sed -n 1p   # by time written, not by name
    ;;
  *) usage ;;
esac
