"""The main job of the README: evaluate the default model on STS-B and SciFact, index SciFact, search it.

Every step reads and writes the embedding cache, so a second run re-encodes nothing.
"""
from __future__ import annotations

import time
from pathlib import Path

from embedkit.data import load_beir, load_sts
from embedkit.encoding import cached_encode
from embedkit.evaluation import evaluate_retrieval, evaluate_sts
from embedkit.models import embedding_dim, load_model, model_fingerprint, model_name
from embedkit.errors import DataError
from embedkit.paths import cache_dir, data_dir, data_dir_origin, resolve_data_path

DATASETS = ("stsb", "scifact")  # under EMBEDKIT_DATA
SAMPLE_QUERY = "Vitamin D deficiency is linked to a higher risk of respiratory infections."


def run_demo(model: str = "default", query: str = SAMPLE_QUERY, k: int = 3, spec: str = "HNSW32",
             out: Path | None = None, batch_size: int = 32, device: str | None = None) -> dict:
    from embedkit.index import FaissIndex

    missing = [name for name in DATASETS if not (data_dir() / name).is_dir()]
    if missing:
        raise DataError(f"the demo needs {' and '.join(missing)} under EMBEDKIT_DATA={data_dir()} ({data_dir_origin()}); "
                        f"get {'them' if len(missing) > 1 else 'it'} with `embedkit data get {' '.join(missing)}` "
                        "(downloads from the Hugging Face hub), or point EMBEDKIT_DATA at a folder that has them")
    timings = {}
    started = time.perf_counter()
    encoder = load_model(model, device=device)

    t = time.perf_counter()
    sts = evaluate_sts(encoder, load_sts(resolve_data_path("stsb"), split="test"), batch_size=batch_size, device=device)
    timings["sts"] = time.perf_counter() - t

    t = time.perf_counter()
    scifact = load_beir(resolve_data_path("scifact"), split="test")
    retrieval = evaluate_retrieval(encoder, scifact, batch_size=batch_size, device=device)
    timings["retrieval"] = time.perf_counter() - t

    t = time.perf_counter()
    docs = list(scifact.corpus.values())
    # full_text joins title and text as mteb does, so these are the evaluation's cached embeddings
    vectors = cached_encode(encoder, [d.full_text for d in docs], role="document", batch_size=batch_size,
                            device=device)
    index = FaissIndex(embedding_dim(encoder), spec=spec, metric="cosine", model_name=model,
                       model_fingerprint=model_fingerprint(encoder))
    index.add([d.id for d in docs], vectors, texts=[d.text for d in docs], titles=[d.title for d in docs])
    out = out or cache_dir() / "demo-index"
    index.save(out)
    query_vector = cached_encode(encoder, [query], role="query", batch_size=batch_size, device=device,
                                 show_progress=False)
    hits = index.search(query_vector, k)[0]
    timings["index"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    return {"model": model_name(encoder), "sts": sts, "retrieval": retrieval, "index_dir": str(out), "spec": spec,
            "count": len(index), "query": query, "hits": [h.as_dict() for h in hits], "seconds": timings}
