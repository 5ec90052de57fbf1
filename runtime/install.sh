#!/bin/sh
# Prepare THIS board for edgerec without a laptop (cloud-init, a golden image, pull-mode fleets):
# a virtual environment with the runtime, then `edgerec device setup --local` (board.json, service unit,
# OS packages, video group). Idempotent; what `edgerec device setup user@host` does over SSH.
#
#   curl -fsSL .../install.sh | sh -s -- --profile rpi5
#   sh runtime/install.sh --profile jetson-orin-nano --package ./edgerec-0.1.0-py3-none-any.whl
#
# Options: --profile NAME, --root DIR (default ~/.edgerec), --package SPEC (default edgerec[<extra>]),
#          --extra NAME (default litert), --system-site-packages, any other option is passed to setup.
set -eu

root="$HOME/.edgerec"
profile=""
package=""
extra="litert"
ssp=""
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --root) root="$2"; shift 2 ;;
        --package) package="$2"; shift 2 ;;
        --extra) extra="$2"; shift 2 ;;
        --system-site-packages) ssp="--system-site-packages"; shift ;;
        *) break ;;
    esac
done
case "$profile" in
    rpi*) ssp="--system-site-packages" ;;  # picamera2/libcamera come from apt
esac
explicit="$package"
[ -n "$package" ] || package="edgerec[$extra]"

command -v python3 >/dev/null || { echo "python3 is missing: sudo apt-get install -y python3 python3-venv" >&2; exit 1; }
mkdir -p "$root"
venv="$root/venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv $ssp "$venv" || { echo "python3 -m venv failed: sudo apt-get install -y python3-venv" >&2; exit 1; }
fi
if [ -n "$explicit" ] || ! "$venv/bin/python" -c 'import edgerec' 2>/dev/null; then
    "$venv/bin/python" -m pip install --upgrade "$package"
fi

set -- --local --venv "$venv" --root "$root" "$@"
[ -n "$profile" ] && set -- "$@" --profile "$profile"
exec "$venv/bin/python" -m edgerec.cli device setup "$@"
