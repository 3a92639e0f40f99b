#!/usr/bin/env bash
# Build a wheelhouse: everything needed to install bluesky-ingester on a machine with no network.
#
#   scripts/wheelhouse.sh DIR
#
# Run on a machine with the same Python version, OS and CPU architecture as the air-gapped one, and
# with access to a package index (through pip's usual configuration). DIR then holds the project's
# wheel, a wheel of every runtime dependency for this Python and platform (built from source by pip
# when the index has none), and requirements.txt pinning each one's exact version. Carry DIR over,
# then:
#
#   python3 -m venv .venv && .venv/bin/pip install --no-index --find-links DIR bluesky-ingester
#
# PYTHON (default python3) is the interpreter whose version and platform the wheels are for.
set -euo pipefail

if [[ $# -ne 1 || $1 == -* ]]; then
  echo "usage: $0 DIR   (a folder of wheels for an offline 'pip install --no-index --find-links DIR')" >&2
  exit 2
fi
python=${PYTHON:-python3}
mkdir -p "$1"
dir=$(cd "$1" && pwd)
project=$(cd "$(dirname "$0")/.." && pwd)

# Built from a clean copy of the sources: setuptools' build/ folder in a work tree can hold modules
# since removed, which would end up in the wheel.
source_copy=$(mktemp -d)
trap 'rm -rf "$source_copy"' EXIT
cp -r "$project/pyproject.toml" "$project/README.md" "$project/ingester" "$project/schemas" "$source_copy/"
find "$source_copy" -name __pycache__ -prune -exec rm -rf {} +

"$python" -m pip wheel --quiet --no-deps --wheel-dir "$dir" "$source_copy"
wheel=$(ls -t "$dir"/bluesky_ingester-*.whl | head -n 1)
# Every runtime dependency (the extras the project declares for running: none beyond its own list).
"$python" -m pip wheel --quiet --wheel-dir "$dir" --find-links "$dir" "$wheel"

# requirements.txt: name==version of every wheel, from the wheel file names (name-version-...whl).
"$python" - "$dir" <<'EOF'
import sys
from pathlib import Path

folder = Path(sys.argv[1])
pins = sorted({"==".join(w.name.split("-")[:2]).replace("_", "-").lower() for w in folder.glob("*.whl")})
(folder / "requirements.txt").write_text("".join(pin + "\n" for pin in pins))
print(f"{folder}: {len(pins)} wheels; install with: pip install --no-index --find-links {folder} bluesky-ingester")
EOF
