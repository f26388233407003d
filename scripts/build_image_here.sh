#!/usr/bin/env bash
# Build the rgenima image from the repository's unchanged Dockerfile on a machine without a Docker engine
# and without access to a container registry (the project's Debian 12 machines), using rootful podman.
# See ../shared/notes/containers-here.md and docs/containers.md ("Building without a registry").
#
#   sudo scripts/build_image_here.sh            # install podman if needed, make the base image, the
#                                               # wheelhouse, and build rgenima:<version> (CPU torch)
#   scripts/build_image_here.sh --lock          # only re-resolve the pins: rewrite scripts/container-constraints.txt
#   scripts/build_image_here.sh --oci-archive   # also write rgenima-<version>.oci.tar for apptainer build
#   scripts/build_image_here.sh --ci            # what .ci/run does: build localhost/rgenima:ci for the container
#                                               # tests, or say why not and exit 0 when podman is not installed
#
# Steps:
#   1. podman, buildah, runc, debootstrap from Debian; /etc/containers/containers.conf with runc, cgroupfs and
#      capped ulimits (crun and the default ulimits fail here).
#   2. A stand-in for the Dockerfile's base image python:3.11-slim-bookworm: Debian bookworm made with
#      debootstrap (python3 3.11 included) and a venv at /usr/local, so that /usr/local/bin/python and pip
#      exist as in the official image. It is tagged with the official name so that FROM finds it locally.
#   3. A wheelhouse: exactly the pinned versions of scripts/container-constraints.txt and torch==$TORCH_VERSION
#      (here the local CPU build), with a DeepSpeed wheel built against torch; files already there are reused
#      (without asking PyPI when nothing is missing).
#   4. podman build --pull=never, the wheelhouse mounted at /wheels and PIP_EXTRA="--no-index --find-links
#      /wheels": nothing is downloaded inside the build. podman's layer cache keeps the torch, DeepSpeed and
#      dependency layers while container-constraints.txt and TORCH_VERSION stay the same: a change of rgenima's
#      code rebuilds only its own small layer and those after it.
# Environment: TORCH_VERSION (2.13.0), IMAGE (rgenima), TAG (<version>, or <version>-freesurfer),
#   WITH_FREESURFER (0), MODEL_BUNDLE (""), SOURCE_URL (""), NICE (10),
#   WHEELHOUSE (./wheelhouse; with --ci ~/.cache/rgenima-wheelhouse), BUILD_OPTS (more podman build options).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
only_lock=0; oci=0; ci=0
for arg in "$@"; do
  case $arg in
    --lock) only_lock=1 ;;
    --oci-archive) oci=1 ;;
    --ci) ci=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
say() { echo "[build_image_here $(date +%H:%M:%S)] $*"; }
if [ "$ci" = 1 ] && ! command -v podman >/dev/null 2>&1; then
  say "podman is not installed: the image is not built and the container tests (tests/test_container.py," \
      "marker 'container') skip; docs/containers.md says how to build it"
  exit 0
fi
VERSION=$(python3 -c "import re;print(re.search(r'^version = \"(.+)\"', open('pyproject.toml').read(), re.M).group(1))")
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
IMAGE=${IMAGE:-rgenima}
WITH_FREESURFER=${WITH_FREESURFER:-0}
MODEL_BUNDLE=${MODEL_BUNDLE:-}
SOURCE_URL=${SOURCE_URL:-}
NICE=${NICE:-10}
BASE=python:3.11-slim-bookworm
if [ "$ci" = 1 ]; then
  WHEELS=${WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/rgenima-wheelhouse}
  TAG=${TAG:-ci}
else
  WHEELS=${WHEELHOUSE:-$ROOT/wheelhouse}
fi
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
CONSTRAINTS=scripts/container-constraints.txt

# -- 3. wheelhouse and the pinned constraints -------------------------------------------------------------
make_wheelhouse() {
  mkdir -p "$WHEELS"
  local freeze; freeze=$(mktemp)
  # the versions of the development environment are the ones tested: resolve against them
  "$PY" -m pip freeze --exclude-editable | grep -viE '^(torch|rgenima|-e )' > "$freeze" || true
  if ! ls "$WHEELS"/deepspeed-*.whl >/dev/null 2>&1; then
    say "building a DeepSpeed wheel against torch (no build isolation)"
    local ds; ds=$(grep -i '^deepspeed==' "$freeze" || echo "deepspeed>=0.15")
    nice -n "$NICE" "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELS" "$ds"
  fi
  say "pip download into $WHEELS"
  nice -n "$NICE" "$PY" -m pip download -q -d "$WHEELS" --find-links "$WHEELS" -c "$freeze" \
    . "torch==$TORCH_VERSION" deepspeed bids-validator-deno "setuptools>=77" wheel
  rm -f "$freeze"
  "$PY" - "$WHEELS" scripts/container-constraints.txt <<'EOF'
import pathlib, re, sys
wheels, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
pins = {}
for f in sorted(wheels.iterdir()):
    m = re.match(r"^(.+?)-(\d[^-]*)-.*\.whl$", f.name) or re.match(r"^(.+)-(\d[^-]*)\.(?:tar\.gz|zip)$", f.name)
    if m and (name := re.sub(r"[-_.]+", "-", m.group(1)).lower()) not in ("torch", "rgenima"):
        pins[name] = m.group(2)
header = [line for line in target.read_text().splitlines() if line.startswith("#")] if target.exists() else []
target.write_text("\n".join(header + [f"{n}=={v}" for n, v in sorted(pins.items())]) + "\n")
print(f"{len(pins)} pins written to {target}")
EOF
}

# The wheelhouse for a build: exactly the pinned versions (no resolution, no rewrite of the pins).
fill_wheelhouse() {
  mkdir -p "$WHEELS"
  local ds; ds=$(grep -i '^deepspeed==' "$CONSTRAINTS")
  if ! ls "$WHEELS"/deepspeed-"${ds#*==}"-*.whl >/dev/null 2>&1; then
    say "building a DeepSpeed wheel ($ds) against the installed torch (no build isolation)"
    nice -n "$NICE" "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELS" "$ds"
  fi
  if "$PY" -m pip download -q --no-index --find-links "$WHEELS" -d "$WHEELS" --no-deps \
       -r "$CONSTRAINTS" "torch==$TORCH_VERSION" >/dev/null 2>&1; then
    say "wheelhouse $WHEELS: every pinned file present ($(find "$WHEELS" -maxdepth 1 -type f | wc -l) files)"
  else
    say "pip download of the pinned versions into $WHEELS"
    nice -n "$NICE" "$PY" -m pip download -q -d "$WHEELS" --find-links "$WHEELS" --no-deps \
      -r "$CONSTRAINTS" "torch==$TORCH_VERSION"
  fi
}

if [ "$only_lock" = 1 ]; then make_wheelhouse; exit 0; fi

# -- 1. podman -------------------------------------------------------------------------------------------
# (debootstrap is needed only to make the base image, once)
if ! command -v podman >/dev/null || { ! command -v debootstrap >/dev/null \
     && ! podman image exists "docker.io/library/$BASE"; }; then
  say "installing podman, buildah, runc, debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman buildah runc debootstrap uidmap slirp4netns >/dev/null
fi
if [ ! -f /etc/containers/containers.conf ] || ! grep -q 'runtime = "runc"' /etc/containers/containers.conf; then
  say "writing /etc/containers/containers.conf (runc, cgroupfs, capped ulimits)"
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
fi

# -- 2. base images --------------------------------------------------------------------------------------
if ! podman image exists localhost/debian:bookworm; then
  rootfs=$(mktemp -d)
  say "debootstrap bookworm (with python3, python3-venv) into $rootfs"
  nice -n "$NICE" debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - localhost/debian:bookworm >/dev/null
  rm -rf "$rootfs"
fi
if ! podman image exists "docker.io/library/$BASE"; then
  say "making the stand-in base image $BASE"
  ctx=$(mktemp -d)
  cat > "$ctx/Containerfile" <<'EOF'
FROM localhost/debian:bookworm
# As in the official python image: python and pip in /usr/local/bin (here a venv over Debian's python3.11)
RUN python3 -m venv /usr/local && /usr/local/bin/python -m pip --version
ENV LANG=C.UTF-8
CMD ["python3"]
EOF
  podman build --pull=never -q -t "docker.io/library/$BASE" -t "localhost/$BASE" "$ctx" >/dev/null
  rm -rf "$ctx"
fi

# -- 3. wheelhouse ---------------------------------------------------------------------------------------
fill_wheelhouse

# -- 4. the image ----------------------------------------------------------------------------------------
if [ -z "${TAG:-}" ]; then TAG=$VERSION; [ "$WITH_FREESURFER" = 1 ] && TAG=$VERSION-freesurfer; fi
tag="$IMAGE:$TAG"
tags=(-t "$tag")
[ "$ci" = 1 ] || tags+=(-t "$IMAGE:latest")
# the full commit, with -dirty when tracked files differ from it (the OCI revision label)
revision=$(git describe --always --dirty --abbrev=40 2>/dev/null || echo unknown)
previous=$(podman image inspect "localhost/$tag" --format '{{.Id}}' 2>/dev/null || true)
say "podman build $tag (torch $TORCH_VERSION from $WHEELS, WITH_FREESURFER=$WITH_FREESURFER, revision $revision)"
start=$(date +%s)
# shellcheck disable=SC2086  # BUILD_OPTS: more podman build options, split on spaces (e.g. --no-cache)
nice -n "$NICE" podman build --pull=never --network none --format docker ${BUILD_OPTS:-} \
  -v "$WHEELS:/wheels:ro" \
  --build-arg PIP_EXTRA="--no-index --find-links /wheels" \
  --build-arg TORCH_VERSION="$TORCH_VERSION" \
  --build-arg WITH_FREESURFER="$WITH_FREESURFER" \
  --build-arg MODEL_BUNDLE="$MODEL_BUNDLE" \
  --build-arg IMAGE_TAG="$tag" \
  --build-arg SOURCE_URL="$SOURCE_URL" \
  --build-arg VCS_REF="$revision" \
  "${tags[@]}" .
seconds=$(( $(date +%s) - start ))
current=$(podman image inspect "localhost/$tag" --format '{{.Id}}')
if [ "$ci" = 1 ] && [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  # the image this tag named before (now untagged): remove it and its own layers, so that builds in CI do not
  # pile up; the cached layers the new image shares with it stay
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
say "built $tag in $seconds s; size: $(podman image inspect "$tag" --format '{{.Size}}' | awk '{printf "%.2f GB", $1/1e9}')"
if [ "$oci" = 1 ]; then
  say "writing $IMAGE-$TAG.oci.tar (on a cluster: apptainer build rgenima.sif oci-archive://$IMAGE-$TAG.oci.tar)"
  podman save --format oci-archive -o "$IMAGE-$TAG.oci.tar" "$tag"
fi
