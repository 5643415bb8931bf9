#!/usr/bin/env bash
# The GPU check: the CUDA-marked tests, then `detect bench --device cuda` for every detector family
# (Faster R-CNN, torchvision's, ultralytics', and the project's YOLO heads), at batch 1 and 8, AMP off.
# Run it on a machine with a CUDA device, from the repository root, with the project installed:
#     bash tools/gpu_check.sh [OUT]            # OUT defaults to runs/gpu_check
# It writes OUT/tests.txt, OUT/bench.md (+ bench.json, bench.png) and OUT/gpu.txt (card, driver).
# Budget: about 5 minutes on an H100 (tests ~2 min, bench ~2 min).
set -euo pipefail
OUT=${1:-runs/gpu_check}
PY=${PYTHON:-python}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" \
    | tee -a "$OUT/gpu.txt"
# every CUDA-marked test (the rest of the suite runs on CPU in CI)
"$PY" -m pytest -q -p no:cacheprovider -m cuda tests 2>&1 | tee "$OUT/tests.txt" || echo "CUDA tests FAILED" | tee -a "$OUT/tests.txt"
# one model per family: registry names, untrained weights (latency does not depend on them)
FAMILIES=$("$PY" - <<'PY'
from detect.models.registry import detector_entry, list_detectors
seen, names = set(), []
for name in list_detectors():
    entry = detector_entry(name)
    key = (entry.family, entry.peer, entry.builder.__module__ if hasattr(entry.builder, "__module__") else name)
    if key not in seen:
        seen.add(key)
        names.append(name)
print(" ".join(names))
PY
)
echo "families: $FAMILIES" | tee -a "$OUT/gpu.txt"
"$PY" -m detect bench $FAMILIES --device cuda --image-size 320 --batch-size 1 8 --iterations 20 --out "$OUT" \
    2>&1 | tee "$OUT/bench.txt"
