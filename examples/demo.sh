#!/usr/bin/env bash
# The tour of README.md on examples/alerting, run by `make demo`: an embedded PostgreSQL,
# each service migrating through its own two-line Makefile, then verify and a rollback.
# Works in a scratch copy, so the example in the repository is never changed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
migcoord="${MIGCOORD:-$repo/.venv/bin/migcoord}"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/migcoord-demo.XXXXXX")
chmod 755 "$scratch"   # the embedded server may run as another user (nobody, under root)
# Without .migcoord/: a dev server someone started in the example (perhaps as another
# user) must not come along; the copy starts its own.
(cd "$repo/examples" && tar --exclude=.migcoord -cf - alerting) | tar -xf - -C "$scratch"
# The example includes the repository's Makefile.inc by a relative path; the copy gets its own.
cp "$repo/Makefile.inc" "$scratch/alerting/Makefile.inc"
cd "$scratch/alerting"

cleanup() {
    "$migcoord" dev stop >/dev/null 2>&1 || true
    rm -rf "$scratch"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
in_service() { make --no-print-directory -C "$1" "${@:2}" MIGCOORD="$migcoord"; }

step "migcoord dev start      # a local PostgreSQL in .migcoord/dev"
"$migcoord" dev start
export DATABASE_URL=embedded

step "cd aggregator && make migrate-up      # refused: rule-service's tables come first"
if in_service aggregator migrate-up; then
    echo "unexpected: aggregator migrated before rule-service" >&2
    exit 1
fi

step "cd rule-service && make migrate-up"
in_service rule-service migrate-up
step "cd aggregator && make migrate-up"
in_service aggregator migrate-up
step "cd aggregator && make migrate-status"
in_service aggregator migrate-status

step "cd aggregator && make migrate-create NAME='add notification channel'"
in_service aggregator migrate-create NAME="add notification channel"
step "make check-migrations      # the new migration is still empty: a warning, no error"
in_service aggregator check-migrations

step "write its SQL; make check-migrations      # the schema registry is now out of date"
printf '%s\n' "ALTER TABLE notifications ADD COLUMN IF NOT EXISTS channel text NOT NULL DEFAULT 'email';" \
    > aggregator/migrations/000007_add_notification_channel.up.sql
printf '%s\n' "ALTER TABLE notifications DROP COLUMN IF EXISTS channel;" \
    > aggregator/migrations/000007_add_notification_channel.down.sql
in_service aggregator check-migrations
step "make migrate-docs      # the schema registry, built on a throwaway database"
in_service aggregator migrate-docs
grep -F "| channel |" docs/MIGRATIONS.md
in_service aggregator check-migrations

step "cd rule-service && make migrate-verify      # every down undoes its up"
in_service rule-service migrate-verify

step "cd aggregator && make migrate-down"
in_service aggregator migrate-down
step "cd aggregator && make migrate-status"
in_service aggregator migrate-status

step "migcoord dev stop"
"$migcoord" dev stop
echo
echo "demo done: the scratch copy in $scratch is removed on exit"
