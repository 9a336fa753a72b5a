#!/usr/bin/env bash
# Builds the Corvid image, the one deploy/image/image-tag.yaml names (corvid:<tag>), as an OCI image layout,
# without a Docker daemon and without pulling any image:
#   - a Debian bookworm root filesystem made by mmdebstrap (variant apt) with the packages in deploy/image/packages;
#   - the Node binary the project pins through its `node` devDependency (node_modules/node/bin/node);
#   - the production node_modules (`npm ci --omit=dev` in a staging copy; the repository's node_modules is only read);
#   - the CLI compiled to JavaScript (src/ -> dist/ by tsconfig.build.json, as the npm package ships it) with bin/,
#     schemas/ and package.json in /opt/corvid; bin/corvid.js runs dist/. Not the TypeScript sources: Node's type
#     stripper needs WebAssembly (about 30 MiB more per process), which the agent's --jitless turns off. And
#     deploy/charon/strongswan.conf as charon's default;
#   - one layer and the image config, written by umoci.
#
#   deploy/image/build.sh [OUT_DIR]
#
#   OUT_DIR / $CORVID_IMAGE_DIR   the OCI layout to write (default: $CORVID_CACHE_DIR/image, where CORVID_CACHE_DIR
#                                 defaults to $HOME/.cache/corvid like the kube-apiserver build)
#   CORVID_IMAGE_REBUILD=1        build even when OUT_DIR already holds an image of the same inputs
#   CORVID_DEBIAN_SNAPSHOT=<ts>   take the packages from snapshot.debian.org at <ts> (e.g. 20250520T000000Z)
#                                 instead of deb.debian.org, so the same commit gives the same digest at a later date
#   CORVID_DEBIAN_MIRROR, CORVID_DEBIAN_SECURITY_MIRROR   other mirrors (default deb.debian.org)
#   SOURCE_DATE_EPOCH             every timestamp in the image (default: the commit time of HEAD)
#
# Reproducible: two builds give the same manifest digest when they get the same inputs, namely the same Debian
# package versions (same day on deb.debian.org, or the same CORVID_DEBIAN_SNAPSHOT), the same package-lock.json, Node
# binary, sources and SOURCE_DATE_EPOCH. For that, every mtime in the layer is SOURCE_DATE_EPOCH, the tar is sorted by
# name with numeric owners and no atime/ctime, apt's lists/caches, logs, /etc/machine-id and other per-run files are
# removed, and the config's creation times are SOURCE_DATE_EPOCH. corvid-build.json in OUT_DIR lists the Debian
# packages with their versions; test/integration/image.test.ts builds a second time and compares the digests.
#
# Needs root (mmdebstrap --mode=root, and the chroot smoke check) on a Debian machine with mmdebstrap, umoci and npm,
# after `npm ci` (for the Node binary and the npm cache). Prints the image size and digest.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
START=$SECONDS
log() { printf '[image] %s (%ds)\n' "$*" "$((SECONDS - START))"; }
die() { printf '[image] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (mmdebstrap --mode=root writes a root filesystem owned by root)"
for tool in mmdebstrap umoci npm jq tar sha256sum git unshare; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install mmdebstrap umoci jq)"
done

# ---- what to build: the name and tag from the one place the manifests take them from
TAG_FILE="$REPO/deploy/image/image-tag.yaml"
IMAGE_NAME=$(sed -n 's/^  newName: *//p' "$TAG_FILE")
IMAGE_TAG=$(sed -n 's/^  newTag: *//p' "$TAG_FILE")
[[ -n "$IMAGE_NAME" && -n "$IMAGE_TAG" ]] || die "$TAG_FILE: no newName/newTag"

CACHE_ROOT="${CORVID_CACHE_DIR:-$HOME/.cache/corvid}"
OUT="${1:-${CORVID_IMAGE_DIR:-$CACHE_ROOT/image}}"
mkdir -p "$(dirname "$OUT")"
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")

# ---- inputs
NODE_BIN="$REPO/node_modules/node/bin/node"
NODE_WANT=$(sed -n '/"node_modules\/node": {/,/}/s/^ *"version": "\(.*\)",/\1/p' "$REPO/package-lock.json")
[[ -x "$NODE_BIN" ]] || die "$NODE_BIN missing: run npm ci first"
NODE_HAVE=$("$NODE_BIN" --version)
[[ "$NODE_HAVE" == "v$NODE_WANT" ]] || die "$NODE_BIN is $NODE_HAVE, package-lock.json pins $NODE_WANT: run npm ci"

mapfile -t PACKAGES < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$REPO/deploy/image/packages" | grep -v '^$')
# Tracked and untracked-but-not-ignored files: what the working tree holds, never build outputs.
mapfile -t APP_FILES < <(cd "$REPO" && git ls-files --cached --others --exclude-standard -- bin src schemas | LC_ALL=C sort -u |
  while read -r f; do [[ -f "$f" ]] && printf '%s\n' "$f"; done)
((${#APP_FILES[@]} > 0)) || die "no files under bin/ src/ schemas/"

SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct)}"
export SOURCE_DATE_EPOCH
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
REVISION=$(git -C "$REPO" rev-parse HEAD)

if [[ -n "${CORVID_DEBIAN_SNAPSHOT:-}" ]]; then
  MIRROR="http://snapshot.debian.org/archive/debian/$CORVID_DEBIAN_SNAPSHOT"
  SECURITY_MIRROR="http://snapshot.debian.org/archive/debian-security/$CORVID_DEBIAN_SNAPSHOT"
  # A snapshot's Release files are past their Valid-Until.
  APT_SNAPSHOT_OPTS=(--aptopt='Acquire::Check-Valid-Until "false"')
else
  MIRROR="${CORVID_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  SECURITY_MIRROR="${CORVID_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
  APT_SNAPSHOT_OPTS=()
fi

# The cache key: everything above that decides the content except the Debian archive's state.
INPUTS_KEY=$(
  {
    printf 'name=%s tag=%s epoch=%s mirror=%s security=%s snapshot=%s\n' "$IMAGE_NAME" "$IMAGE_TAG" \
      "$SOURCE_DATE_EPOCH" "$MIRROR" "$SECURITY_MIRROR" "${CORVID_DEBIAN_SNAPSHOT:-}"
    printf '%s\n' "${PACKAGES[@]}"
    cd "$REPO"
    sha256sum deploy/image/build.sh deploy/image/packages deploy/charon/strongswan.conf package.json package-lock.json \
      tsconfig.json tsconfig.build.json "${APP_FILES[@]}"
    sha256sum "$NODE_BIN" | cut -d' ' -f1
  } | sha256sum | cut -d' ' -f1
)

report() {
  local manifest config layer_size rootfs_size
  manifest=$(jq -r --arg t "$IMAGE_TAG" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$OUT/index.json")
  config=$(jq -r '.config.digest' "$OUT/blobs/sha256/${manifest#sha256:}")
  layer_size=$(jq '[.layers[].size] | add' "$OUT/blobs/sha256/${manifest#sha256:}")
  rootfs_size=$(jq -r '.rootfs_bytes' "$OUT/corvid-build.json")
  printf 'image    %s:%s (OCI layout %s, tag %s)\n' "$IMAGE_NAME" "$IMAGE_TAG" "$OUT" "$IMAGE_TAG"
  printf 'digest   %s\n' "$manifest"
  printf 'config   %s\n' "$config"
  printf 'rootfs   %s (layer diff_id, the uncompressed tar)\n' "$(jq -r '.rootfs.diff_ids[0]' "$OUT/blobs/sha256/${config#sha256:}")"
  printf 'size     %s MiB compressed, %s MiB unpacked\n' "$((layer_size / 1048576))" "$((rootfs_size / 1048576))"
}

if [[ "${CORVID_IMAGE_REBUILD:-}" != 1 && -f "$OUT/corvid-build.json" && -f "$OUT/index.json" ]] &&
  [[ $(jq -r '.inputs' "$OUT/corvid-build.json") == "$INPUTS_KEY" ]]; then
  log "cached: same inputs as the image in $OUT (CORVID_IMAGE_REBUILD=1 builds again)"
  report
  exit 0
fi

# ---- work area next to the output (same filesystem, so the final move is a rename)
WORK=$(mktemp -d "$(dirname "$OUT")/.corvid-image.XXXXXX")
cleanup() {
  local rc=$?
  rm -rf "$WORK"
  ((rc == 0)) || printf '[image] FAILED (exit %d) after %ds\n' "$rc" "$((SECONDS - START))" >&2
}
trap cleanup EXIT
ROOTFS="$WORK/rootfs"

# ---- production node_modules, from the lockfile, in a staging copy (offline first: npm ci filled the cache)
log "npm ci --omit=dev (staging)"
mkdir -p "$WORK/app"
cp "$REPO/package.json" "$REPO/package-lock.json" "$WORK/app/"
(cd "$WORK/app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null)

# ---- Debian root filesystem
log "mmdebstrap bookworm (${#PACKAGES[@]} packages and their dependencies)"
INCLUDE=$(IFS=,; printf '%s' "${PACKAGES[*]}")
# No manuals, docs (copyright files stay), translations: nothing at run time reads them.
mmdebstrap --mode=root --variant=apt --format=directory --quiet \
  --include="$INCLUDE" \
  --aptopt='APT::Install-Recommends "false"' "${APT_SNAPSHOT_OPTS[@]}" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  bookworm "$ROOTFS" \
  "deb $MIRROR bookworm main" \
  "deb $MIRROR bookworm-updates main" \
  "deb $SECURITY_MIRROR bookworm-security main"

# What the Debian archive gave, to tell "the archive changed" from "the build is not reproducible" when two digests
# differ (test/integration/image.test.ts).
dpkg-query --admindir="$ROOTFS/var/lib/dpkg" -W -f '${Package} ${Version} ${Architecture}\n' | LC_ALL=C sort >"$WORK/packages.txt"

# ---- Corvid
log "node $NODE_HAVE, /opt/corvid (bin/, schemas/ and src/ compiled to dist/), charon's strongswan.conf"
install -m 0755 "$NODE_BIN" "$ROOTFS/usr/local/bin/node"
APP="$ROOTFS/opt/corvid"
mkdir -p "$APP"
install -m 0644 "$REPO/package.json" "$REPO/package-lock.json" "$APP/"
for f in "${APP_FILES[@]}"; do
  [[ "$f" == src/* ]] || install -D -m 0644 "$REPO/$f" "$APP/$f"
done
chmod 0755 "$APP/bin/corvid.js"
# The sources compiled as the npm package's prepack compiles them; the compiler comes from the repository's
# node_modules (a devDependency, pinned by the lockfile).
"$NODE_BIN" "$REPO/node_modules/typescript/bin/tsc" -p "$REPO/tsconfig.build.json" --outDir "$WORK/dist"
(cd "$WORK/dist" && find . -type f | LC_ALL=C sort | while read -r f; do install -D -m 0644 "$f" "$APP/dist/$f"; done)
cp -a "$WORK/app/node_modules" "$APP/node_modules"
ln -s /opt/corvid/bin/corvid.js "$ROOTFS/usr/local/bin/corvid"
install -D -m 0644 "$REPO/deploy/charon/strongswan.conf" "$ROOTFS/etc/corvid/charon/strongswan.conf"
# The default user: ssh (SSH git remotes) refuses to run for a uid without a passwd entry.
echo 'corvid:x:65532:65532:corvid:/nonexistent:/usr/sbin/nologin' >>"$ROOTFS/etc/passwd"
echo 'corvid:x:65532:' >>"$ROOTFS/etc/group"
# Modes independent of the umask of the checkout and of npm.
chmod -R u+rwX,go+rX,go-w "$APP"

# ---- does it run? (its own /proc, in a mount namespace that goes away with it)
log "smoke check: corvid --help in the root filesystem"
unshare --mount --propagation private --pid --fork sh -c \
  'mount -t proc proc "$1/proc" && exec chroot "$1" /usr/local/bin/corvid --help' sh "$ROOTFS" >/dev/null

# ---- per-run state out, so that two builds are equal
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/cache/debconf/*-old \
  "$ROOTFS"/var/lib/dpkg/*-old "$ROOTFS"/var/cache/ldconfig/aux-cache "$ROOTFS"/var/log/* \
  "$ROOTFS"/etc/machine-id "$ROOTFS"/var/lib/dbus/machine-id "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* \
  "$ROOTFS"/root/.npm "$ROOTFS"/root/.cache "$ROOTFS"/dev/* "$ROOTFS"/run/*
find "$ROOTFS" -xdev \( -name '*.pyc' -o -name '__pycache__' \) -prune -exec rm -rf {} +

# ---- the layer: sorted, numeric owners, one mtime, no atime/ctime
log "layer tar"
LAYER="$WORK/layer.tar"
tar --create --file "$LAYER" --directory "$ROOTFS" \
  --sort=name --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  --format=posix --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
  --one-file-system .
ROOTFS_BYTES=$(du -sb "$ROOTFS" | cut -f1)

# ---- the OCI layout
log "OCI layout (umoci)"
LAYOUT="$WORK/oci"
umoci init --layout "$LAYOUT"
umoci new --image "$LAYOUT:$IMAGE_TAG"
umoci config --image "$LAYOUT:$IMAGE_TAG" --no-history \
  --created "$CREATED" --author "Corvid (deploy/image/build.sh)" --architecture amd64 --os linux \
  --config.user 65532:65532 --config.workingdir /opt/corvid \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env NODE_ENV=production \
  --config.env STRONGSWAN_CONF=/etc/corvid/charon/strongswan.conf \
  --config.entrypoint tini --config.entrypoint=-- --config.entrypoint corvid \
  --config.cmd=--help \
  --config.label "org.opencontainers.image.title=corvid" \
  --config.label "org.opencontainers.image.version=$IMAGE_TAG" \
  --config.label "org.opencontainers.image.revision=$REVISION" \
  --config.label "org.opencontainers.image.created=$CREATED"
umoci raw add-layer --image "$LAYOUT:$IMAGE_TAG" \
  --history.created "$CREATED" --history.created_by "deploy/image/build.sh" "$LAYER"
umoci gc --layout "$LAYOUT"
# umoci writes its files 0600; skopeo run by another user must be able to read the layout.
chmod -R a+rX "$LAYOUT"
jq -n --arg inputs "$INPUTS_KEY" --arg image "$IMAGE_NAME:$IMAGE_TAG" --argjson rootfs_bytes "$ROOTFS_BYTES" \
  --arg epoch "$SOURCE_DATE_EPOCH" --arg node "$NODE_HAVE" --rawfile packages "$WORK/packages.txt" \
  '{image: $image, inputs: $inputs, source_date_epoch: $epoch, node: $node, rootfs_bytes: $rootfs_bytes,
    debian_packages: ($packages | split("\n") | map(select(. != "")))}' \
  >"$LAYOUT/corvid-build.json"

rm -rf "$OUT.old"
[[ ! -e "$OUT" ]] || mv "$OUT" "$OUT.old"
mv "$LAYOUT" "$OUT"
rm -rf "$OUT.old"
log "done"
report
