#!/usr/bin/env bash
# Builds kube-apiserver v1.20.2 from Debian's own `kubernetes` source package (see
# test/support/README.md) and caches the binary outside the repository. Idempotent: a
# second run with a good cached binary returns in seconds.
#
#   CORVID_CACHE_DIR  cache root (default: $HOME/.cache/corvid)
#
# Needs a Debian (bookworm) machine and root (or sudo) for apt.
set -euo pipefail

VERSION=v1.20.2
CACHE_ROOT="${CORVID_CACHE_DIR:-$HOME/.cache/corvid}"
DEST="$CACHE_ROOT/kube-apiserver-1.20.2"
BIN="$DEST/bin/kube-apiserver"
DEB_SRC_FILE=/etc/apt/sources.list.d/corvid-deb-src.sources
DEB_SRC_LIST=/etc/apt/sources.list.d/corvid-deb-src.list
GO_BIN=/usr/lib/go-1.19/bin
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
PACKAGES=(dpkg-dev golang-1.19-go rsync make golang-github-modern-go-reflect2-dev etcd-server etcd-client openssl)

START=$SECONDS
log() { printf '[kube-apiserver] %s (%ds)\n' "$*" "$((SECONDS - START))"; }
die() { printf '[kube-apiserver] ERROR: %s\n' "$*" >&2; exit 1; }

cached_ok() {
  [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -qx "Kubernetes $VERSION"
}

if cached_ok; then
  echo "kube-apiserver cached: $BIN"
  exit 0
fi

mkdir -p "$DEST/bin"
# Two parallel runs (e.g. two test shells) must not build into the same place.
exec 9>"$DEST/.lock"
if ! flock -n 9; then
  log "another build holds $DEST/.lock, waiting…"
  flock 9
fi
if cached_ok; then
  echo "kube-apiserver cached: $BIN"
  exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  die "apt needs root: run as root (or install sudo)"
fi
command -v apt-get >/dev/null 2>&1 || die "this build needs a Debian machine (apt-get not found)"

WORK=$(mktemp -d "$DEST/work.XXXXXX")
ADDED_SRC=()
cleanup() {
  local rc=$?
  # Leave the machine's apt configuration as we found it.
  if ((${#ADDED_SRC[@]})); then "${SUDO[@]}" rm -f "${ADDED_SRC[@]}"; fi
  rm -rf "$WORK"
  if ((rc != 0)); then
    printf '[kube-apiserver] FAILED (exit %d) after %ds; rerun to retry\n' "$rc" "$((SECONDS - START))" >&2
  fi
}
trap cleanup EXIT

# --- deb-src entry, derived from the existing Debian entries (never a hard-coded mirror) ---
add_deb_src() {
  local f tmp
  # deb822 files: copy each Debian stanza with Types: deb-src.
  tmp="$WORK/deb-src.sources"
  : >"$tmp"
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" && "$f" != "$DEB_SRC_FILE" ]] || continue
    grep -q 'debian-archive-keyring\|/debian' "$f" || continue
    sed -E 's/^Types:.*/Types: deb-src/' "$f" >>"$tmp"
    printf '\n' >>"$tmp"
  done
  if [[ -s "$tmp" ]]; then
    "${SUDO[@]}" install -m 0644 "$tmp" "$DEB_SRC_FILE"
    ADDED_SRC+=("$DEB_SRC_FILE")
  fi
  # One-line format: turn "deb <debian uri> ..." into "deb-src ...".
  tmp="$WORK/deb-src.list"
  if [[ -f /etc/apt/sources.list ]]; then
    sed -nE '/\/debian/s/^[[:space:]]*deb[[:space:]]+/deb-src /p' /etc/apt/sources.list >"$tmp"
    if [[ -s "$tmp" ]]; then
      "${SUDO[@]}" install -m 0644 "$tmp" "$DEB_SRC_LIST"
      ADDED_SRC+=("$DEB_SRC_LIST")
    fi
  fi
  ((${#ADDED_SRC[@]})) || die "no Debian apt entry found in /etc/apt/sources.list(.d) to derive a deb-src entry from"
}

if apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
  log "deb-src already configured; updating apt…"
else
  log "adding a deb-src entry and updating apt…"
  add_deb_src
fi
"${SUDO[@]}" apt-get update -qq || die "apt-get update failed"

log "installing build dependencies: ${PACKAGES[*]}…"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null \
  || die "apt-get install failed"
[[ -x "$GO_BIN/go" ]] || die "Go 1.19 not found at $GO_BIN after installing golang-1.19-go"
[[ -d "$REFLECT2_SRC" ]] || die "reflect2 source not found at $REFLECT2_SRC"

log "fetching source…"
cd "$WORK"
apt-get source --download-only kubernetes >"$WORK/fetch.log" 2>&1 \
  || { tail -n 20 "$WORK/fetch.log" >&2; die "apt-get source kubernetes failed"; }
DSC=$(ls "$WORK"/kubernetes_*.dsc 2>/dev/null | head -n 1 || true)
[[ -n "$DSC" ]] || die "no kubernetes .dsc downloaded"
# Debian calls it 1.20.5+really1.20.2; anything else would not be the version we test against.
[[ "$DSC" == *1.20.2* ]] || die "unexpected kubernetes source version: $(basename "$DSC")"

log "unpacking $(basename "$DSC")…"
dpkg-source -x "$DSC" "$WORK/src" >"$WORK/unpack.log" 2>&1 \
  || { tail -n 20 "$WORK/unpack.log" >&2; die "dpkg-source -x failed"; }
cd "$WORK/src"

# Vendored reflect2 v1.0.1 segfaults ("fatal error: fault") under Go >= 1.18; Debian ships 1.0.2.
log "replacing vendored reflect2 with Debian's 1.0.2…"
[[ -d vendor/github.com/modern-go/reflect2 ]] || die "vendor/github.com/modern-go/reflect2 missing in source"
rsync -a --delete "$REFLECT2_SRC/" vendor/github.com/modern-go/reflect2/

cat >"$WORK/version" <<EOF
KUBE_GIT_VERSION=$VERSION
KUBE_GIT_MAJOR=1
KUBE_GIT_MINOR=20
KUBE_GIT_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56
KUBE_GIT_TREE_STATE=clean
EOF

log "building cmd/kube-apiserver with Go $("$GO_BIN/go" env GOVERSION) (takes several minutes)…"
# Everything offline, from vendor/; Go caches inside the work dir so only the binary remains.
if ! env PATH="$GO_BIN:$PATH" GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 GO111MODULE=on \
  GOCACHE="$WORK/gocache" GOMODCACHE="$WORK/gomodcache" GOTOOLCHAIN=local \
  KUBE_GIT_VERSION_FILE="$WORK/version" \
  make WHAT=cmd/kube-apiserver >"$WORK/build.log" 2>&1; then
  tail -n 40 "$WORK/build.log" >&2
  die "make WHAT=cmd/kube-apiserver failed (log tail above)"
fi

OUT=$(find _output -type f -name kube-apiserver -perm -u+x | head -n 1)
[[ -n "$OUT" ]] || die "build finished but no kube-apiserver binary under _output/"
install -m 0755 "$OUT" "$BIN.tmp"
mv -f "$BIN.tmp" "$BIN"

log "checking the version…"
cached_ok || die "built binary does not report Kubernetes $VERSION: $("$BIN" --version 2>&1 || true)"
log "built"
echo "kube-apiserver cached: $BIN"
