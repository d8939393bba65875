#!/usr/bin/env bash
# Manage the files nginx reads from CEILGRID_SECRETS_DIR (never inside the repository).
#
#   secrets.sh tls  DIR SERVER_NAME        self-signed certificate (trials/tests; use a CA-issued one in production)
#   secrets.sh user DIR NAME viewer|operator   add or rotate a user, print the new password once
#   secrets.sh remove-user DIR NAME
#
# A password can be supplied in CEILGRID_NEW_PASSWORD instead of being generated.
# nginx re-reads users.htpasswd on every request; after changing operators.map run
# `docker compose exec nginx nginx -s reload`.
set -euo pipefail
umask 077

usage() { sed -n '2,10p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2
mkdir -p "$dir/tls" "$dir/auth"
touch "$dir/auth/users.htpasswd" "$dir/auth/operators.map"

# nginx workers run unprivileged and read these per request: hashes and user names
# only, so world-readable inside a secrets directory that is itself mode 0700.
publish_auth() {
  chmod 755 "$dir/auth"
  chmod 644 "$dir/auth/users.htpasswd" "$dir/auth/operators.map"
}

drop_user() {  # $1 name
  local tmp
  tmp=$(mktemp "$dir/auth/.edit.XXXXXX")
  awk -F: -v n="$1" '$1 != n' "$dir/auth/users.htpasswd" > "$tmp"
  mv "$tmp" "$dir/auth/users.htpasswd"
  tmp=$(mktemp "$dir/auth/.edit.XXXXXX")
  awk -v n="\"$1\"" '$1 != n' "$dir/auth/operators.map" > "$tmp"
  mv "$tmp" "$dir/auth/operators.map"
  publish_auth
}

case "$cmd" in
  tls)
    [ $# -eq 3 ] || usage
    openssl req -x509 -newkey rsa:3072 -nodes -days 365 -subj "/CN=$3" \
      -addext "subjectAltName=DNS:$3,DNS:localhost,IP:127.0.0.1" \
      -keyout "$dir/tls/tls.key" -out "$dir/tls/tls.crt" 2>/dev/null
    ;;
  user)
    [ $# -eq 4 ] || usage
    name=$3 role=$4
    [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "user name: letters, digits, . _ - only" >&2; exit 2; }
    case "$role" in viewer|operator) ;; *) usage ;; esac
    password=${CEILGRID_NEW_PASSWORD:-$(openssl rand -base64 18)}
    drop_user "$name"
    printf '%s:%s\n' "$name" "$(openssl passwd -apr1 -stdin <<<"$password")" >> "$dir/auth/users.htpasswd"
    if [ "$role" = operator ]; then
      printf '"%s" ceilgrid_operator;\n' "$name" >> "$dir/auth/operators.map"
    fi
    publish_auth
    [ -n "${CEILGRID_NEW_PASSWORD:-}" ] || printf '%s\n' "$password"
    ;;
  remove-user)
    [ $# -eq 3 ] || usage
    drop_user "$3"
    ;;
  *) usage ;;
esac
