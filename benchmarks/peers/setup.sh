#!/usr/bin/env bash
# Build the peers' own environment, benchmarks/peers/.venv (git-ignored), apart from the
# project's: torch 2.13.0 (the CPU wheel, from WHEEL if that file exists, else the package
# registry) first, so that the peers' installs keep it, then pydrobert-pytorch and
# storchastic 0.3.7 from the package registry.  Each install's log goes to
# benchmarks/peers/.venv/<name>.log; a peer that fails to install is reported and the
# others go on (peers.py reports a missing peer as "not installed").
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3.11}"
WHEEL="${WHEEL:-/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl}"
"$PYTHON" -m venv "$VENV" || exit 1
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)
if [ -f "$WHEEL" ]; then TORCH="$WHEEL"; else TORCH="torch==2.13.0"; fi
"${PIP[@]}" "$TORCH" >"$VENV/torch.log" 2>&1 || { tail -5 "$VENV/torch.log"; exit 1; }
status=0
for peer in pydrobert-pytorch storchastic==0.3.7; do
    if "${PIP[@]}" "$peer" "torch==2.13.0" >"$VENV/${peer%%=*}.log" 2>&1; then
        echo "installed $peer"
    else
        echo "FAILED to install $peer:"; tail -15 "$VENV/${peer%%=*}.log"; status=1
    fi
done
exit $status
