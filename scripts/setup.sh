#!/usr/bin/env bash
# Install everything into ./.venv (idempotent; a second run only checks).
#   - the pinned Python packages of pyproject.toml (+ the test extras),
#   - opencv-contrib-python last, over opencv-python (both write cv2/; contrib adds selective search),
#   - the Debian data packages (Fashion-MNIST, OpenCV samples) when missing,
#   - ultralytics' offline config dir with seeded fonts.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
OPENCV_VERSION=5.0.0.93
DEBIAN_DATA=(dataset-fashion-mnist opencv-doc)

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi

echo "setup: installing Python packages (pinned in pyproject.toml)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import detect, classify, torch, torchvision, ultralytics" \
    || { echo "setup: the Python install failed (see the pip output above)" >&2; exit 1; }

if ! .venv/bin/python -c "import cv2, sys; sys.exit(0 if hasattr(cv2, 'ximgproc') else 1)" 2>/dev/null; then
    echo "setup: installing opencv-contrib-python==$OPENCV_VERSION over opencv-python"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
        "opencv-contrib-python==$OPENCV_VERSION" 2>&1 | grep -v "is ignored" || true
fi

missing=()
for pkg in "${DEBIAN_DATA[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian data packages: ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
            || echo "setup: WARNING: apt-get could not install ${missing[*]}; Fashion-MNIST and OpenCV digits will be unavailable" >&2
    else
        echo "setup: WARNING: Debian packages ${missing[*]} are missing and cannot be installed here" \
             "(needs root and apt-get: 'sudo apt-get install ${missing[*]}'); Fashion-MNIST and OpenCV digits will be unavailable" >&2
    fi
fi

.venv/bin/python -c "import detect.offline as o; print('setup: ultralytics offline config in', o.configure_ultralytics_env())"
echo "setup: done"
