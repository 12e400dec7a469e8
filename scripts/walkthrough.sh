#!/usr/bin/env bash
# Run README.md's "## Walk-through" against a running server, so that the README stays
# the tested source of the walk-through (CI runs it against the `docker compose` stack).
#
# Usage: scripts/walkthrough.sh [HOST:PORT]   (default localhost:8080, as the README says)
#
# Every ```sh block of the section (its ### subsections included) is run, in order, in one
# bash, with the commands exactly as written except that localhost:8080 becomes HOST:PORT.
# curl is wrapped to record each response's status. A request fails the run when it gets
# no answer or a 5xx, or when the README states its status in a comment line
# "# -> NNN ..." after it (the status of the last request before that comment) and the
# answer differs.
set -euo pipefail

addr="${1:-localhost:8080}"
root="$(cd "$(dirname "$0")/.." && pwd)"
readme="$root/README.md"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
statuses="$work/statuses"
: >"$statuses"

# The section runs from its heading to the next level-2 heading; fenced blocks are taken
# from it by their ```sh opening line, so prose and other languages are left out. After
# each "# -> NNN" comment, a check of the last status against NNN is inserted.
awk -v addr="$addr" '
  /^## / { in_section = ($0 == "## Walk-through"); next }
  !in_section { next }
  /^```sh[ \t]*$/ { in_block = 1; blocks++; next }
  /^```/ && in_block { in_block = 0; next }
  !in_block { next }
  { line = $0; gsub(/localhost:8080/, addr, line); print line }
  /^# -> [0-9][0-9][0-9]([^0-9]|$)/ { print "expect_status " substr($0, 6, 3) " " NR }
  END { if (blocks == 0) exit 1 }
' "$readme" >"$work/body.sh" || { echo "walkthrough: no \`\`\`sh block under \"## Walk-through\" in README.md" >&2; exit 1; }

cat >"$work/run.sh" <<'EOF'
# The README's commands run as written: no set -e, since a failed request is found from
# its status, and some commands (curl ... | head -1) end a pipe early on purpose.
STATUSES="$1"
curl() {
  local err rc
  err="$(mktemp)"
  command curl -w '%{stderr}@@status %{http_code} %{method} %{url_effective}\n' "$@" 2>"$err"
  rc=$?
  grep '^@@status ' "$err" >>"$STATUSES"
  grep -v '^@@status ' "$err" >&2
  rm -f "$err"
  return $rc
}
expect_status() {
  local got
  got="$(grep '^@@status ' "$STATUSES" | tail -n 1 | cut -d' ' -f2)"
  if [ "$got" = "$1" ]; then
    echo "@@expect ok $1 (README line $2)" >>"$STATUSES"
  else
    echo "@@expect FAIL want $1 got ${got:-none} (README.md line $2)" >>"$STATUSES"
  fi
}
EOF
cat "$work/body.sh" >>"$work/run.sh"

echo "walkthrough: running README.md's walk-through against $addr"
bash "$work/run.sh" "$statuses" || true
echo

requests=0 failed=0
while read -r tag a b rest; do
  case "$tag" in
    @@status)
      requests=$((requests + 1))
      if [ "$a" = 000 ] || [ "${a:0:1}" = 5 ]; then
        failed=$((failed + 1))
        echo "walkthrough: FAIL $b $rest answered $a"
      fi
      ;;
    @@expect)
      if [ "$a" != ok ]; then
        failed=$((failed + 1))
        echo "walkthrough: FAIL $b $rest"
      fi
      ;;
  esac
done <"$statuses"
checks="$(grep -c '^@@expect ' "$statuses" || true)"
echo "walkthrough: $requests requests, $checks stated statuses checked"
echo "walkthrough: $((requests + checks - failed)) passed, $failed failed"
[ "$requests" -gt 0 ] && [ "$failed" -eq 0 ]
