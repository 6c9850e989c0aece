"""Acknowledged writes survive kill -9; half-written ones are never served; the folder is shared with the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from serve.servehelpers import TOKEN, Server, server_env

WAL = "serve-wal.jsonl"


def _serve(folder, token_file, log, *extra) -> Server:
    return Server([f"main={folder}", "--token-file", token_file, *extra], log).start()


def _upsert(server, docs, **kw):
    return server.post("/documents", json={"documents": docs}, token=TOKEN, **kw)


def test_acknowledged_upserts_survive_kill_9_and_a_torn_tail_is_dropped(fresh_index, token_file, tmp_path):
    saved_before = _saved_files(fresh_index)
    server = _serve(fresh_index, token_file, tmp_path / "a.log", "--checkpoint-seconds", "600")
    docs = [{"id": f"k{i}", "title": "Kill", "text": f"Written just before the process was killed, number {i}."}
            for i in range(3)]
    for doc in docs:
        assert _upsert(server, [doc]).status_code == 200
    server.kill()  # right after the last acknowledgement: no shutdown code runs
    wal = fresh_index / WAL
    logged = wal.read_bytes()
    assert logged.count(b"\n") == 3  # the log, not a save, holds the writes
    assert _saved_files(fresh_index) == saved_before
    refused = subprocess.run([sys.executable, "-m", "embedkit.cli.main", "index", "remove", str(fresh_index),
                              "--ids", "k0", "--wait", "0"], capture_output=True, text=True, env=server_env(),
                             timeout=300)  # saving first would let the replay put k0 back over this removal
    assert refused.returncode == 2 and "a server stopped before saving" in refused.stderr.strip().splitlines()[-1]
    assert _saved_files(fresh_index) == saved_before
    wal.write_bytes(logged + b'0badc0de {"op":"upsert","documents":[["cut')  # an append a crash cut short

    with _serve(fresh_index, token_file, tmp_path / "b.log") as again:
        for doc in docs:
            assert again.get(f"/documents/{doc['id']}").json()["rows"][0]["text"] == doc["text"]
        hits = again.post("/search", json={"query": "killed process number 2", "mode": "bm25"}).json()["hits"]
        assert {h["id"] for h in hits[:3]} == {"k0", "k1", "k2"}
        assert again.get("/health").json()["indexes"]["main"]["rows"] == 6 + 3  # the torn line added nothing
        assert wal.stat().st_size == 0  # replayed and folded into a checkpoint at start
        assert _saved_files(fresh_index) != saved_before

    lines = logged.splitlines(keepends=True)
    wal.write_bytes(lines[0] + lines[1].replace(b"number 1", b"number X") + lines[2])  # checksum now wrong
    result = subprocess.run([sys.executable, "-m", "embedkit.cli.main", "serve", str(fresh_index), "--port", "0",
                             "--token-file", str(token_file)], capture_output=True, text=True, env=server_env(),
                            timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("embedkit: error:") and f"{WAL}, line 2: damaged record" in error


def test_kill_during_a_stream_of_writes_loses_nothing_acknowledged(fresh_index, token_file, tmp_path):
    """Writers post batches of 4 documents sharing a tag; kill -9 lands mid-stream. After the restart
    every acknowledged batch is there, whole, and an unacknowledged one is there whole or not at all."""
    server = _serve(fresh_index, token_file, tmp_path / "a.log")
    acked, sent, stop = [], [], threading.Event()

    def writer(w: int) -> None:
        n = 0
        while not stop.is_set():
            tag = f"w{w}n{n}"
            docs = [{"id": f"{tag}-{j}", "text": f"stream document {j} tag{tag}"} for j in range(4)]
            sent.append(tag)
            try:
                if _upsert(server, docs, timeout=30).status_code == 200:
                    acked.append(tag)
            except Exception:  # the connection dies with the server
                return
            n += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    while len(acked) < 12:
        time.sleep(0.02)
    server.kill()
    stop.set()
    for t in threads:
        t.join()

    with _serve(fresh_index, token_file, tmp_path / "b.log") as again:
        for tag in sent:
            found = [again.get(f"/documents/{tag}-{j}").status_code == 200 for j in range(4)]
            if tag in acked:
                assert all(found), tag
            else:
                assert all(found) or not any(found), (tag, found)
            hits = again.post("/search", json={"query": f"tag{tag}", "mode": "bm25", "k": 10}).json()["hits"]
            assert len(hits) in (0, 4) and (tag not in acked or len(hits) == 4), (tag, hits)


def _cli(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "embedkit.cli.main", *map(str, args)], capture_output=True,
                          text=True, env=server_env(), timeout=timeout)


def test_cli_writers_share_the_folder_with_a_serving_server(fresh_index, token_file, tmp_path):
    """The server holds the folder's writer lock only while it has unsaved writes: meanwhile `embedkit
    index add` fails (--wait 0) or waits, readers see the last saved generation; after the server's
    checkpoint the CLI adds on top of the server's writes, and the server serves the CLI's generation and
    writes on top of it. Nothing either side wrote is lost."""
    from embedkit.index import IndexFolder

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"_id": "cli1", "title": "CLI", "text": "added from the command line"}) + "\n")
    server = _serve(fresh_index, token_file, tmp_path / "a.log", "--checkpoint-seconds", "600",
                    "--checkpoint-bytes", "20000", "--poll-seconds", "0.2")
    assert _upsert(server, [{"id": "srv1", "text": "written by the server first"}]).status_code == 200
    assert server.get("/health").json()["indexes"]["main"]["unsaved_writes"] is True  # holds the lock

    busy = _cli("index", "add", fresh_index, "--corpus", corpus, "--wait", "0")
    assert busy.returncode == 2 and "Traceback" not in busy.stderr, busy.stderr
    error = busy.stderr.strip().splitlines()[-1]  # after the model's loading progress bar
    assert error.startswith("embedkit: error:") and "another writer holds the index" in error
    assert f"pid {server.proc.pid}," in error and " serve " in error
    assert len(IndexFolder.load(fresh_index).index) == 6  # readers see the saved generation, not the logged writes

    waiting = subprocess.Popen([sys.executable, "-m", "embedkit.cli.main", "index", "add", str(fresh_index),
                                "--corpus", str(corpus), "--wait", "120", "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=server_env())
    big = [{"id": f"srv2-{j}", "text": f"a long document {j} " + "padding " * 1000} for j in range(3)]
    assert _upsert(server, big).status_code == 200  # the log passes 20000 bytes: checkpoint, lock let go
    out, err = waiting.communicate(timeout=240)
    assert waiting.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["count"] == 6 + 1 + 3 + 1  # on top of the server's writes

    deadline = time.monotonic() + 60
    while server.get("/documents/cli1").status_code != 200:  # the server loads the CLI's generation
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.1)
    assert server.post("/search", json={"query": "command line", "mode": "bm25"}).json()["hits"][0]["id"] == "cli1"
    health = server.get("/health").json()["indexes"]["main"]
    assert health["rows"] == 11 and health["generation"] == IndexFolder.current_generation(fresh_index)
    assert health["unsaved_writes"] is False
    assert server.delete("/documents/d6", token=TOKEN).status_code == 200  # on top of the CLI's add
    server.stop()
    assert (fresh_index / WAL).stat().st_size == 0  # a clean stop saves and empties the log
    folder = IndexFolder.load(fresh_index)
    ids = set(folder.index.ids())
    assert {"srv1", "cli1", "srv2-0", "srv2-2"} <= ids and "d6" not in ids and len(ids) == 10
    assert sorted(folder.bm25.ids) == sorted(ids)


def _saved_files(folder) -> list[str]:
    """The index's own files (not the log, not the lock file)."""
    return sorted(p.name for p in folder.iterdir() if p.name != WAL and not p.name.startswith("."))


def test_unsaved_writes_are_saved_after_checkpoint_seconds_then_the_server_builds_on_other_writers(
        fresh_index, token_file, tmp_path, tiny_model_dir):
    """The timed checkpoint lets the lock go; another writer then saves a generation, which a server that
    does not poll (--poll-seconds 3600) keeps not serving (its searches stay on the generation it has)
    until its next write, which first loads that generation and so keeps the other writer's document."""
    from embedkit.data.records import Document
    from embedkit.index import IndexFolder, writer_lock
    from embedkit.models import load_model

    with _serve(fresh_index, token_file, tmp_path / "a.log", "--checkpoint-seconds", "0.5",
                "--poll-seconds", "3600") as server:
        before = _saved_files(fresh_index)
        assert _upsert(server, [{"id": "cp", "text": "checkpointed while serving"}]).status_code == 200
        deadline = time.monotonic() + 60
        while (fresh_index / WAL).stat().st_size and time.monotonic() < deadline:
            time.sleep(0.05)  # the checkpoint runs in the first quiet moment after half a second
        assert (fresh_index / WAL).stat().st_size == 0 and _saved_files(fresh_index) != before
        assert "cp" in IndexFolder.load(fresh_index).index  # what a reader of the folder now sees

        with IndexFolder.update(fresh_index, wait=10) as folder:  # the server let the folder go
            folder.add_documents(load_model(str(tiny_model_dir), device="cpu"),
                                 [Document("other", "Other", "saved by another writer")])
        assert server.get("/documents/other").status_code == 404  # still the generation it loaded
        assert _upsert(server, [{"id": "after", "text": "written after the other writer"}]).status_code == 200
        assert server.get("/documents/other").status_code == 200  # loaded before writing
        assert server.get("/health").json()["indexes"]["main"]["rows"] == 6 + 3
    ids = set(IndexFolder.load(fresh_index).index.ids())
    assert {"cp", "other", "after"} <= ids and len(ids) == 9
    with writer_lock(fresh_index, wait=0):  # a clean stop let it go too
        pass


def test_a_logged_upsert_reads_back_as_written():
    """The log keeps each document's title and text apart (a swap would feed BM25 "text title" after a replay)."""
    import numpy as np

    from embedkit.data import Document
    from embedkit.serve.state import Row, Upsert
    from embedkit.serve.wal import decode_change, encode_change

    change = Upsert([Document("d1", "The title", "The body text.")], [Row("d1", "The body text.", "The title", None)],
                    np.arange(4, dtype=np.float32).reshape(1, 4))
    line = encode_change(change)
    back = decode_change(line[9:-1])  # after the CRC and its space, before the newline
    assert back.documents == change.documents and back.rows == change.rows
    assert np.array_equal(back.vectors, change.vectors)
