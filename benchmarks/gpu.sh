#!/usr/bin/env bash
# Every GPU measurement (issue 34) in one call on a borrowed GPU machine that has torch but no network.
#
#   bash benchmarks/gpu.sh build                  # here: writes .gpu/ (under 64 MiB), what must travel
#   bash benchmarks/gpu.sh run [--max-steps N]    # there; here with a step cap, as a dry run on the CPU
#
# build: the project as a wheel, wheels of what the GPU image lacks (datasets and its dill and multiprocess;
# jsonargparse with its signature extras), a float16 copy of the reference teacher (the float32 one is over the
# 64 MiB a call carries), and the SST-2 and CoNLL-2003 files.
# run: installs the wheels into /tmp/site (nothing else can be installed there), then benchmarks/gpu_run.py,
# which writes $OUT/gpu.json (or benchmarks/results/gpu/gpu.json) and a log per stage within its deadline.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.gpu
SHARED=../shared

build() {
    rm -rf "$CARRY" && mkdir -p "$CARRY/wheels" "$CARRY/data"
    python -m pip wheel --quiet --no-deps --no-build-isolation -w "$CARRY/wheels" .
    python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$CARRY/wheels" \
        "datasets==$(pip_version datasets)" "dill==$(pip_version dill)" "multiprocess==$(pip_version multiprocess)" \
        "jsonargparse==$(pip_version jsonargparse)" "docstring-parser==$(pip_version docstring-parser)" \
        "typeshed-client==$(pip_version typeshed-client)" "pytest==$(pip_version pytest)" \
        "iniconfig==$(pip_version iniconfig)"
    # If the GPU image's pyarrow or fsspec is too old for this datasets, the oldest one pyproject.toml allows
    mkdir -p "$CARRY/fallback"
    python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$CARRY/fallback" \
        datasets==4.0.0 dill==0.3.8 multiprocess==0.70.16
    python - "$SHARED/teachers/minilm-l6-sst2" "$CARRY/teacher" <<'PY'
import sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
source, target = sys.argv[1:]
AutoModelForSequenceClassification.from_pretrained(source).to(torch.float16).save_pretrained(target)
AutoTokenizer.from_pretrained(source).save_pretrained(target)
PY
    cp -r "$SHARED/data/glue/SST-2" "$SHARED/data/conll2003" "$CARRY/data/"
    chmod -R u+w "$CARRY"
    du -sh "$CARRY"
}

pip_version() {
    python -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'
}

run() {
    local out=${OUT:-benchmarks/results/gpu}
    local wheels=("$CARRY"/wheels/distill-*.whl)
    if ! python3 -c "import datasets, jsonargparse" 2>/dev/null; then  # the GPU image lacks them; a dry run has them
        wheels=("$CARRY"/wheels/*.whl)
    fi
    rm -rf /tmp/site
    python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "${wheels[@]}"
    export PYTHONPATH=/tmp/site
    if ! python3 -P -c "import datasets, distill.cli" 2>/tmp/import-error; then
        tail -1 /tmp/import-error
        echo "falling back to datasets 4.0.0 (the lowest pyproject.toml allows)"
        python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "$CARRY"/fallback/*.whl
        python3 -P -c "import datasets, distill.cli"
    fi
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
    python3 -c "import torch, transformers, lightning; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'lightning', lightning.__version__)"
    python3 benchmarks/gpu_run.py --carry "$CARRY" --out "$out" "$@"
}

case "${1:-}" in
    build) build ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash benchmarks/gpu.sh build | run [--max-steps N] [--deadline-s S]" >&2; exit 2 ;;
esac
