#!/usr/bin/env bash
# Installs what vtxsim needs on Debian 12 (idempotent: a no-op when everything is there).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libsystemc-dev catch2 libboost-program-options-dev
      nlohmann-json3-dev libbenchmark-dev libyaml-cpp-dev gnuplot-nox
      slurm-wlm munge libeigen3-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
