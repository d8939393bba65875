#!/bin/sh
# As the official image: render /etc/nginx/templates/NAME.template to
# /etc/nginx/conf.d/NAME, substituting only ${VAR} for variables set in the
# environment (nginx's own $variables stay), then start nginx.
set -eu
if [ "${1:-}" = nginx ]; then
  defined=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')
  for template in /etc/nginx/templates/*.template; do
    [ -f "$template" ] || continue
    target=/etc/nginx/conf.d/$(basename "$template" .template)
    envsubst "$defined" < "$template" > "$target"
    echo "entrypoint: rendered $template to $target"
  done
fi
exec "$@"
