#!/bin/sh
# Run `migcoord up` at deploy time, retrying only what is worth retrying.
#
#   SERVICE=aggregator ./migrate.sh          # this service's pending migrations
#   SERVICE=--all ./migrate.sh               # every service's (a one-shot migration job)
#
# migcoord's exit codes: 0 done; 1 a migration failed or was refused, or still hit its lock
# timeout after its own retries (a person must look: the error says what to do and names
# the session in the way); 2 bad invocation or config (the same); 3 no connection, or no
# migration lock in time: worth retrying.
# Every replica may run this at the same time: each migration is applied once, the others
# wait for the migration lock (--lock-timeout) and then find nothing to do.
set -u
attempts=${MIGRATE_ATTEMPTS:-5}
pause=${MIGRATE_RETRY_PAUSE:-10}
lock_timeout=${MIGRATE_LOCK_TIMEOUT:-120}
migcoord=${MIGCOORD:-migcoord}
case "${SERVICE:?set SERVICE to the service name, or to --all}" in
    --all) target="--all" ;;
    *) target="--service $SERVICE" ;;
esac
attempt=1
while :; do
    # shellcheck disable=SC2086  # $target is two words on purpose
    $migcoord up $target --lock-timeout "$lock_timeout"
    code=$?
    if [ "$code" -ne 3 ] || [ "$attempt" -ge "$attempts" ]; then
        exit "$code"
    fi
    wait=$((pause * attempt))
    echo "migrate.sh: attempt $attempt of $attempts ended with exit 3 (worth retrying); again in ${wait}s" >&2
    sleep "$wait"
    attempt=$((attempt + 1))
done
