#!/usr/bin/env bash
# Build, from Debian packages only, the container images that the Docker paths need, for
# machines where a Docker engine runs but no image registry is reachable (CI here; see
# docs/operations.md, "Docker paths": where no registry is reachable):
#
#   acp-local/debian:CODENAME          minimal Debian (minbase + ca-certificates): the
#                                      server image's runtime base (RUNTIME_IMAGE)
#   acp-local/postgres:CODENAME        that plus Debian's PostgreSQL, with an entrypoint
#                                      honouring the official postgres image's settings
#                                      (scripts/local-images/postgres-entrypoint.sh)
#   acp-local/golang:GOVERSION-CODENAME the Debian base plus this machine's Go toolchain
#                                      (GOTOOLCHAIN, default go1.27.3): the Dockerfile's
#                                      builder (GO_IMAGE)
#
# Usage: scripts/local-images.sh [debian|postgres|golang|all]...   (default: all)
#
# Each image is labelled with a hash of what defines it (the shell functions below that
# build it, the entrypoint) and is rebuilt only when that hash changes, so a rerun costs a
# few `docker image inspect` calls. Needs root,
# debootstrap and a Docker engine. The Debian mirror is the one this machine's apt uses
# (LOCAL_IMAGES_MIRROR overrides it), read at run time so that no host name is written
# into the repository.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=/dev/null
. /etc/os-release
codename="${LOCAL_IMAGES_SUITE:-${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"

debian_tag="acp-local/debian:$codename"
postgres_tag="acp-local/postgres:$codename"
label=org.agentic-commerce.local-images

log() { echo "local-images: $*" >&2; }

# apt_mirror prints the first URI that this machine's apt sources use for the suite
# itself (not -updates or -security), from one-line (.list) or deb822 (.sources) files.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk -v suite="$codename" '
      $1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == suite) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    # deb822: stanzas separated by blank lines; keep the first URI of a deb stanza whose
    # Suites field names the suite.
    awk -v suite="$codename" '
      function flush() { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uri != "") { print uri; found = 1 } types = suites = uri = "" }
      /^[ \t]*$/ { flush(); if (found) exit; next }
      /^Types:/  { sub(/^Types:[ \t]*/, ""); types = $0 }
      /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
      /^URIs:/   { sub(/^URIs:[ \t]*/, ""); split($0, u, /[ \t]+/); uri = u[1] }
      END { if (!found) flush() }' "$f"
  done
}

mirror() {
  if [ -n "${LOCAL_IMAGES_MIRROR:-}" ]; then
    echo "$LOCAL_IMAGES_MIRROR"
    return
  fi
  local m
  m="$(apt_mirror | head -n 1)"
  if [ -z "$m" ]; then
    log "no apt source for suite $codename found in /etc/apt; set LOCAL_IMAGES_MIRROR"
    return 1
  fi
  echo "$m"
}

# current TAG HASH: the image exists and was built from the same definition.
current() {
  [ "$(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null)" = "$2" ]
}

# definition FUNCTION... -- FILE...: hash of the functions' text and the files' content.
definition() {
  local fns=() files=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do fns+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  files=("$@")
  { declare -f "${fns[@]}"; echo "$codename"; if [ ${#files[@]} -gt 0 ]; then cat "${files[@]}"; fi; } | sha256sum | cut -c1-16
}

# quietly CMD...: run CMD with its output kept in a file that is shown only if it fails
# (the classic builder's deprecation notice would otherwise fill every log).
quietly() {
  local out rc=0
  out="$(mktemp)"
  "$@" >"$out" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then cat "$out" >&2; fi
  rm -f "$out"
  return "$rc"
}

work=""
cleanup() { if [ -n "$work" ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

# rootfs DIR PACKAGES: a minbase Debian in DIR. Downloaded packages are kept in a cache
# shared by the images (and by reruns after a definition changed).
rootfs() {
  local dir="$1" include="$2" cache=/var/cache/acp-local-images/debootstrap
  mkdir -p "$cache"
  command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; return 1; }
  log "debootstrap $codename ($include) into $dir"
  debootstrap --variant=minbase --include="$include" --cache-dir="$cache" \
    "$codename" "$dir" "$(mirror)" >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; return 1; }
  slim "$dir"
}

# slim DIR drops what no container reads: apt's downloads and indexes, documentation and
# translations. With the vfs storage driver (the one that works on these machines) every
# container starts with a full copy of its image, so each megabyte costs on every start.
slim() {
  rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/* \
    "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/*
}

build_debian() {
  local h
  h="$(definition rootfs slim build_debian)"
  if current "$debian_tag" "$h"; then log "$debian_tag is up to date"; return; fi
  work="$(mktemp -d /var/tmp/acp-local-images.XXXXXX)"
  rootfs "$work/root" ca-certificates
  tar -C "$work/root" -c . | docker import \
    --change "LABEL $label=$h" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$debian_tag" >/dev/null
  rm -rf "$work"; work=""
  log "built $debian_tag"
}

build_postgres() {
  local h bin
  h="$(definition rootfs slim build_postgres -- "$here/local-images/postgres-entrypoint.sh")"
  if current "$postgres_tag" "$h"; then log "$postgres_tag is up to date"; return; fi
  work="$(mktemp -d /var/tmp/acp-local-images.XXXXXX)"
  rootfs "$work/root" postgresql
  # Debian's package creates and configures a cluster of its own; the entrypoint makes
  # the one in PGDATA instead, as the official image does.
  rm -rf "$work"/root/var/lib/postgresql/*/main "$work"/root/etc/postgresql/*/main
  # JIT compilation (LLVM, a third of the image) is off unless its provider library is
  # there: without llvmjit.so the server silently runs without JIT, which short test
  # queries never use anyway.
  rm -rf "$work"/root/usr/lib/postgresql/*/lib/llvmjit* "$work"/root/usr/lib/postgresql/*/lib/bitcode \
    "$work"/root/usr/lib/*-linux-gnu/libLLVM*
  install -m 0755 "$here/local-images/postgres-entrypoint.sh" "$work/root/usr/local/bin/docker-entrypoint.sh"
  bin="$(cd "$work/root" && printf '%s\n' usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  tar -C "$work/root" -c . | docker import \
    --change "LABEL $label=$h" \
    --change "ENV PATH=/$bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
    --change 'CMD ["postgres"]' \
    --change 'EXPOSE 5432' \
    - "$postgres_tag" >/dev/null
  # SIGINT is PostgreSQL's fast shutdown, the official image's stop signal (the default
  # SIGTERM waits for clients to leave); `docker import` cannot set it, a build can.
  printf 'FROM %s\nSTOPSIGNAL SIGINT\n' "$postgres_tag" >"$work/Dockerfile"
  DOCKER_BUILDKIT=0 quietly docker build -t "$postgres_tag" - <"$work/Dockerfile"
  rm -rf "$work"; work=""
  log "built $postgres_tag ($(basename "$(dirname "/$bin")"))"
}

build_golang() {
  local goroot goversion tag h
  goroot="$(go env GOROOT)"
  goversion="$(go env GOVERSION)"
  tag="acp-local/golang:${goversion#go}-$codename"
  # The builder downloads modules, so it trusts what this machine trusts: the host's CA
  # bundle, which may hold a local authority (an egress proxy's) that Debian's lacks.
  local bundle=/etc/ssl/certs/ca-certificates.crt
  h="$(printf '%s %s %s %s' "$goversion" "$(definition build_golang)" "$(definition rootfs slim build_debian)" \
    "$(sha256sum <"$bundle")" | sha256sum | cut -c1-16)"
  build_debian
  if current "$tag" "$h"; then log "$tag is up to date"; return; fi
  work="$(mktemp -d /var/tmp/acp-local-images.XXXXXX)"
  cp -a "$goroot" "$work/go"
  cp "$bundle" "$work/ca-certificates.crt"
  # GOTOOLCHAIN=local: the image has exactly this Go and must not try to fetch another.
  cat >"$work/Dockerfile" <<EOF
FROM $debian_tag
COPY go /usr/local/go
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/go/bin:/root/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GOTOOLCHAIN=local
LABEL $label=$h
EOF
  DOCKER_BUILDKIT=0 quietly docker build -t "$tag" "$work"
  rm -rf "$work"; work=""
  log "built $tag"
}

[ "$(id -u)" = 0 ] || { log "must run as root (debootstrap)"; exit 1; }
docker info >/dev/null 2>&1 || { log "no Docker engine answers"; exit 1; }
[ $# -gt 0 ] || set -- all
for what in "$@"; do
  case "$what" in
    debian) build_debian ;;
    postgres) build_postgres ;;
    golang) build_golang ;;
    all) build_debian; build_postgres; build_golang ;;
    *) log "unknown image $what (debian, postgres, golang, all)"; exit 2 ;;
  esac
done
# The versions a rebuild replaced (untagged now): with vfs each holds full copies.
docker image prune -f --filter "label=$label" >/dev/null
