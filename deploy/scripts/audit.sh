#!/usr/bin/env bash
# Dependency audit, offline: advisories (against the snapshot of the RustSec database
# the product owner keeps beside the project), licences, bans and sources, per deny.toml.
#   deploy/scripts/audit.sh    (ADVISORY_DB_SNAPSHOT=<dir> to point at another snapshot)
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny (a few minutes, once)"
  cargo install --locked -q cargo-deny
fi

snapshot=${ADVISORY_DB_SNAPSHOT:-}
for candidate in ../shared/rustsec-advisory-db /work/shared/rustsec-advisory-db; do
  [ -n "$snapshot" ] && break
  [ -d "$candidate" ] && snapshot=$candidate
done
[ -n "$snapshot" ] || { echo "no advisory snapshot found (set ADVISORY_DB_SNAPSHOT)" >&2; exit 1; }

# cargo-deny reads the database as a git checkout.
db=$(mktemp -d)
trap 'rm -rf "$db"' EXIT
cp -r "$snapshot" "$db/advisory-db-snapshot"
git -C "$db/advisory-db-snapshot" init -q
git -C "$db/advisory-db-snapshot" add -A
git -C "$db/advisory-db-snapshot" -c user.name=ci -c user.email=ci@localhost commit -qm snapshot
config=$(mktemp)
trap 'rm -rf "$db" "$config"' EXIT
sed "s|^\[advisories\]|[advisories]\ndb-path = \"$db\"|" deny.toml > "$config"
# cargo-deny reads `cargo metadata` offline, which needs every target's crates in the
# local registry, not only this platform's: a fresh machine has fetched only what it built.
cargo fetch --locked -q
deny() { cargo deny --offline --log-level error --config "$config" check advisories licenses bans sources; }
# cargo-deny looks for the checkout under a name derived from the database URL
# (advisory-db-<hash>); if this version expects another name, give it that name.
if ! out=$(deny 2>&1); then
  expected=$(grep -o "cannot change to '[^']*'" <<<"$out" | sed "s/cannot change to '//; s/'$//" | head -1 || true)
  if [ -n "$expected" ] && [ "$(dirname "$expected")" = "$db" ]; then
    mv "$db/advisory-db-snapshot" "$expected"
    out=$(deny 2>&1) || { echo "$out"; exit 1; }
  else
    echo "$out"; exit 1
  fi
fi
[ -z "$out" ] || echo "$out"
echo "dependency audit passed (advisory snapshot of $(grep -o '[0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}' "$snapshot/SNAPSHOT.md" | head -1))"
