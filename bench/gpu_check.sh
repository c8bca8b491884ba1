#!/usr/bin/env bash
# The one prepared check for a lent GPU machine (the `device` tool), well under its 10-minute limit.
# That machine has no network and runs Python 3.12 with torch, torchvision, pandas, seaborn,
# scikit-learn and pillow, but not ray, optuna or pydantic: the engine needs only pydantic and
# pyyaml, which travel as wheels in .whl/ (ignored by git). Prepare them once, here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
#     pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 pyyaml==6.0.4
# then call the device tool with carry [".whl"] and the command `bash bench/gpu_check.sh`.
# Prints: the GPU; ResNet-18 BYOL epoch time and images/s on CIFAR-10-sized data (fp32 against
# bf16 + channels-last, and with torch.compile); aggregate images/s of 1, 2, 4 and 8 packed trials;
# then the pipeline, DataLoader, evaluation-cost and memory ratios of bench/pipeline.py on CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import study.engine, sys; assert 'ray' not in sys.modules; print('engine imports without ray')"
timeout 330 python3 bench/gpu_throughput.py --compile --packing 1,2,4,8
timeout 150 python3 bench/pipeline.py --device cuda --steps 30 --workers 8
