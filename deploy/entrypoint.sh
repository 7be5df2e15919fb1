#!/bin/sh
# The image's entrypoint. The settings read secrets from NAME or NAME_FILE; the connection URLs
# carry passwords too, so DATABASE_URL and REDIS_URL may come from mounted files the same way
# (DATABASE_URL_FILE, REDIS_URL_FILE). Then it runs the command: gunicorn, celery or manage.py.
set -eu

for name in DATABASE_URL REDIS_URL; do
    eval "direct=\${$name:-}"
    eval "path=\${${name}_FILE:-}"
    [ -n "$path" ] || continue
    if [ -n "$direct" ]; then
        echo "configuration error: set only one of $name and ${name}_FILE" >&2
        exit 1
    fi
    if ! value=$(tr -d ' \t\r\n' 2>/dev/null <"$path"); then
        echo "configuration error: ${name}_FILE: cannot read $path" >&2
        exit 1
    fi
    if [ -z "$value" ]; then
        echo "configuration error: ${name}_FILE: $path is empty" >&2
        exit 1
    fi
    export "$name=$value"
done

exec "$@"
