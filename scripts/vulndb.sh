#!/usr/bin/env bash
# Usage: scripts/vulndb.sh VERSION
#
# Prints the directory of an offline Go vulnerability database built from the
# golang.org/x/vulndb module at VERSION, for `govulncheck -db file://DIR`.
#
# The module's data/osv (the OSV reports) is fetched through the Go module proxy and
# indexed with the module's own cmd/indexdb. The result is cached outside the repository,
# in ${VULNDB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentic-commerce-server/vulndb}/VERSION,
# and rebuilt only when VERSION changes (older versions are then removed).
# Progress goes to stderr; stdout carries only the directory.
set -euo pipefail

version="${1:?usage: $0 VERSION (of golang.org/x/vulndb)}"
module=golang.org/x/vulndb
cache="${VULNDB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentic-commerce-server/vulndb}"
db="$cache/$version"
stamp="$db/.built-from"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$module@$version" ]; then
  echo "$db"
  exit 0
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/.build-$version.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Outside any module: these commands must not read or touch this repository's go.mod.
cd "$work"
export GOFLAGS=

echo "vulndb: downloading $module@$version" >&2
src="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [ -z "$src" ] || [ ! -d "$src/data/osv" ]; then
  echo "vulndb: $module@$version has no data/osv in the module cache (got '$src')" >&2
  exit 1
fi

echo "vulndb: indexing $(find "$src/data/osv" -name '*.json' | wc -l) reports into $db" >&2
go run "$module/cmd/indexdb@$version" -vulns "$src/data/osv" -out "$work/db"
echo "$module@$version" > "$work/db/.built-from"

# Publish with a rename, so a reader never sees half a database. When a concurrent run
# published the same version meanwhile, its copy is kept and this one dropped.
if ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$module@$version" ]; }; then
  rm -rf "$db"
  mv -T "$work/db" "$db"
fi

# Only the pinned version is kept.
for old in "$cache"/*; do
  [ "$old" = "$db" ] || rm -rf "$old"
done

echo "$db"
