#!/usr/bin/env bash
# Installs the system programs mesos_uri and its tests run: curl (every request), the CNCF
# distribution registry (the tests' and the demo's registry), tinyproxy (the proxy tests), the
# venv module of the Python that builds .venv (SYSTEM_PYTHON, default python3; Debian ships it
# apart as python3-venv), and any extra packages named as arguments (the benchmark adds skopeo).
# Does nothing when all are there.
set -euo pipefail

declare -A package_of=([curl]=curl [docker-registry]=docker-registry [tinyproxy]=tinyproxy)
for extra in "$@"; do package_of[$extra]=$extra; done

missing=()
for program in "${!package_of[@]}"; do
    command -v "$program" >/dev/null 2>&1 || missing+=("${package_of[$program]}")
done
python=${SYSTEM_PYTHON:-python3}
# `python3 -m venv` needs ensurepip, which Debian and Ubuntu leave out of their python3.
if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing system packages: ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts a registry on :5000 where systemd runs; ours pick free ports.
