"""sentence-transformers' own fast backends, run for encode_bench.py in a virtualenv of their own.

Why a separate environment: sentence-transformers' ``backend="onnx"`` needs ``optimum-onnx`` and its
``backend="openvino"`` needs ``optimum-intel``, and both pin transformers below the version embedkit is
pinned to (optimum-onnx 0.1: transformers < 4.58; optimum-intel 2.x: < 5.6). So these peers run in
their own virtualenv with the newest sentence-transformers those allow (see ``make_peer_venv.sh``), one
fresh process per timed run, exactly like encode_bench.py's own methods. This file imports nothing
from embedkit (embedkit's pins are not installed there).

Methods (the model folder exported once per method under ``--work``, outside the timings):

- ``st-onnx-O1`` ... ``st-onnx-O4``: ``backend="onnx"`` with ``export_optimized_onnx_model`` at that level
  (O4 adds fp16, meant for GPUs);
- ``st-onnx-int8``: ``export_dynamic_quantized_onnx_model`` with the config for this CPU (avx512_vnni,
  avx512, avx2 or arm64, from /proc/cpuinfo);
- ``st-openvino``: ``backend="openvino"`` (float32);
- ``st-openvino-int8``: ``export_static_quantized_openvino_model`` calibrated on the same local sentences as
  embedkit's openvino-int8 (a local folder instead of its default hub data set, so it works offline).

    PEER/bin/python benchmarks/st_peers.py prepare --model DIR --work DIR --calibration FILE --methods st-onnx-O3,...
    PEER/bin/python benchmarks/st_peers.py encode --model DIR --work DIR --method M --texts FILE --batch B --out F.npy
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import timed  # noqa: E402

CALIBRATION_SIZE = 300  # as embedkit's openvino-int8


def onnx_int8_config() -> str:
    """sentence-transformers' quantisation config name for this CPU."""
    if platform.machine() in ("aarch64", "arm64"):
        return "arm64"
    flags = set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def _folder(work: Path, method: str) -> Path:
    return work / method


def prepare(model_dir: str, work: Path, method: str, calibration: str | None) -> None:
    """Export ``method``'s model files into ``work/method`` (once)."""
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model, \
        export_optimized_onnx_model

    folder = _folder(work, method)
    if (folder / "done.json").exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    backend = "openvino" if method.startswith("st-openvino") else "onnx"
    model = SentenceTransformer(model_dir, backend=backend, device="cpu", local_files_only=True)
    model.save(str(folder))
    file_name = None
    if method.startswith("st-onnx-O"):
        level = method.rsplit("-", 1)[1]
        export_optimized_onnx_model(model, level, str(folder))
        file_name = f"onnx/model_{level}.onnx"
    elif method == "st-onnx-int8":
        config = onnx_int8_config()
        export_dynamic_quantized_onnx_model(model, config, str(folder))
        # the file is model_qint8_<config>.onnx, or model_quint8_avx2.onnx for avx2 (unsigned weights)
        file_name = str(next((folder / "onnx").glob(f"model_q*int8_{config}.onnx")).relative_to(folder))
    elif method == "st-openvino-int8":
        from sentence_transformers import export_static_quantized_openvino_model

        data = work / "calibration-data"
        data.mkdir(parents=True, exist_ok=True)
        lines = [line.strip() for line in open(calibration, encoding="utf-8") if line.strip()][:CALIBRATION_SIZE]
        (data / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        export_static_quantized_openvino_model(model, None, str(folder), dataset_name=str(data),
                                               dataset_config_name="default", dataset_split="train",
                                               column_name="text")
        file_name = "openvino/openvino_model_qint8_quantized.xml"
    (folder / "done.json").write_text(json.dumps({"method": method, "file_name": file_name}), encoding="utf-8")


def load(work: Path, method: str):
    from sentence_transformers import SentenceTransformer

    folder = _folder(work, method)
    file_name = json.loads((folder / "done.json").read_text(encoding="utf-8"))["file_name"]
    backend = "openvino" if method.startswith("st-openvino") else "onnx"
    kwargs = {"file_name": file_name} if file_name else {}
    return SentenceTransformer(str(folder), backend=backend, device="cpu", local_files_only=True, model_kwargs=kwargs)


def encode(args) -> None:
    """One timed encode of every line of ``--texts`` (after an untimed warm-up on 8), like encode_bench's children."""
    import resource

    import numpy as np

    model = load(Path(args.work), args.method)
    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    model.encode(texts[:8], batch_size=8)
    run, result = timed(args.method, lambda: model.encode(texts, batch_size=args.batch, show_progress_bar=False))
    run.extra["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    np.save(args.out, np.asarray(result, dtype=np.float32))
    print(json.dumps(dataclasses.asdict(run)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["prepare", "encode"])
    parser.add_argument("--model", required=True, help="the sentence-transformers model folder")
    parser.add_argument("--work", required=True, help="folder for the exported models")
    parser.add_argument("--methods", default="", help="prepare: comma list of methods")
    parser.add_argument("--calibration", default=None, help="prepare: sentences for st-openvino-int8, one a line")
    parser.add_argument("--method", default=None)
    parser.add_argument("--texts", default=None, help="encode: a JSON list of texts")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.action == "prepare":
        for method in [m for m in args.methods.split(",") if m]:
            try:
                prepare(args.model, Path(args.work), method, args.calibration)
                print(json.dumps({"method": method, "ok": True}), flush=True)
            except Exception as error:  # an export that does not work offline or on this CPU: reported, skipped
                print(json.dumps({"method": method, "ok": False, "error": f"{type(error).__name__}: {error}"[:500]}),
                      flush=True)
    else:
        encode(args)


if __name__ == "__main__":
    main()
