"""Index folders whose IVF lists live in a file of their own (``index build --embeddings DIR --on-disk``):
the same promises as any index folder. The lists file is never changed in place (FAISS would rewrite it
under its readers, and a crash would leave the old manifest naming changed lists), ``verify`` checks it
against the size and SHA-256 its build recorded, and a rebuild switches it under the writer lock.

The embeddings folder is written directly (the format ``embedkit encode --ray`` writes), so no Ray here.
"""
from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from embedkit.cli.main import main
from embedkit.distributed.indexing import build_index_folder
from embedkit.distributed.output import part_name, write_manifest, write_part
from embedkit.errors import IndexError_
from embedkit.index import FaissIndex, IndexFolder
from embedkit.index.lock import writer_lock
from index.ixhelpers import clustered_vectors

SPEC = "IVF16,SQ8"


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("emb")
    vectors, parts = clustered_vectors(1200), []
    for p, start in enumerate(range(0, 1200, 400)):
        write_part(folder, p, [str(i) for i in range(start, start + 400)], vectors[start:start + 400], "test")
        parts.append({"file": part_name(p), "start": start, "stop": start + 400})
    write_manifest(folder, {"identity": {}, "complete": True, "rows": 1200, "dim": vectors.shape[1], "parts": parts,
                            "model": {}})
    return folder


def lists_of(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("lists-*.ivfdata")}


def errors(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("embedkit: error: ")]


def test_changes_are_refused_and_leave_the_lists_file_as_it_was(embeddings, tmp_path, capsys):
    out = tmp_path / "idx"
    build_index_folder(embeddings, out, spec=SPEC, ondisk=True, show_progress=False)
    before = lists_of(out)
    assert len(before) == 1
    with pytest.raises(IndexError_, match="never changed in place"), IndexFolder.update(out) as folder:
        folder.add_vectors(["new"], np.ones((1, 16), dtype=np.float32))
    assert main(["index", "remove", str(out), "--ids", "5"]) == 2
    assert len(lines := errors(capsys)) == 1 and "lists-" in lines[0] and "--on-disk --force" in lines[0]
    assert lists_of(out) == before and len(FaissIndex.load(out)) == 1200
    index = FaissIndex.load(out)  # a save that leaves the documents alone (tune) keeps the lists file
    index.set_search_params(nprobe=4)
    index.save(out)
    assert lists_of(out) == before and FaissIndex.load(out).search_params() == {"nprobe": 4}
    assert main(["index", "verify", str(out)]) == 0
    assert "3 files" in capsys.readouterr().out  # the lists file counted with the manifest's two


def test_verify_and_load_check_the_lists_file(embeddings, tmp_path, capsys):
    out = tmp_path / "idx"
    build_index_folder(embeddings, out, spec=SPEC, ondisk=True, show_progress=False)
    lists = next(out.glob("lists-*.ivfdata"))
    with open(lists, "r+b") as f:  # same size, one byte changed: only the checksum can tell
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    assert IndexFolder.verify(out) == [f"{lists}: checksum mismatch (the file is corrupt)"]
    assert main(["index", "verify", str(out)]) == 1
    assert capsys.readouterr().out.strip() == f"{lists}: checksum mismatch (the file is corrupt)"
    lists.write_bytes(lists.read_bytes()[:-64])  # short: FAISS would map it and fault on a search
    with pytest.raises(IndexError_, match="truncated or overwritten"):
        FaissIndex.load(out)
    assert main(["index", "search", str(out), "--query", "x"]) == 2
    assert len(lines := errors(capsys)) == 1 and f"{lists}: truncated or overwritten" in lines[0]
    lists.unlink()
    assert IndexFolder.verify(out) == [f"{lists}: missing (the index folder is incomplete)"]


def test_a_rebuild_waits_for_the_writer_and_switches_the_lists_file_under_the_lock(embeddings, tmp_path):
    out = tmp_path / "idx"
    build_index_folder(embeddings, out, spec=SPEC, ondisk=True, show_progress=False)
    first = lists_of(out)
    held, seen_while_held = threading.Event(), []

    def other_writer():  # another thread of this process holds the folder for a moment (exclusive too)
        with writer_lock(out):
            held.set()
            time.sleep(1.0)
            seen_while_held.append(lists_of(out))

    holder = threading.Thread(target=other_writer)
    holder.start()
    held.wait()
    build_index_folder(embeddings, out, spec=SPEC, ondisk=True, show_progress=False)
    holder.join()
    assert seen_while_held == [first]  # nothing of the rebuild reached the folder while the lock was held
    after = lists_of(out)
    assert len(after) == 1 and after != first and IndexFolder.verify(out) == []


def test_a_corpus_gives_the_folder_its_bm25_side_in_the_same_generation(embeddings, tmp_path):
    corpus = tmp_path / "corpus.txt"  # a text file: the ids are the line numbers, as the embeddings' are
    corpus.write_text("".join(f"document {i} about {'rivers' if i % 2 else 'stones'}\n" for i in range(1200)))
    out = tmp_path / "idx"
    build_index_folder(embeddings, out, spec=SPEC, corpus=corpus, ondisk=True, show_progress=False)
    folder = IndexFolder.load(out, need_bm25=True)
    assert sorted(folder.bm25.ids) == sorted(folder.index.ids()) and len(folder.bm25.ids) == 1200
    assert folder.bm25.search(["rivers"], 3)[0][0].id in {str(i) for i in range(1, 1200, 2)}
    assert IndexFolder.verify(out) == []
    build_index_folder(embeddings, out, spec="Flat", corpus=corpus, show_progress=False)  # rebuilt in memory
    rebuilt = IndexFolder.load(out, need_bm25=True)
    assert rebuilt.index.spec == "Flat" and sorted(rebuilt.bm25.ids) == sorted(folder.bm25.ids)
    assert IndexFolder.verify(out) == []
