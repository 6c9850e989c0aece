"""Acknowledged writes survive kill -9; half-written ones are never served; one writer per folder."""
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
    server = _serve(fresh_index, token_file, tmp_path / "a.log")
    docs = [{"id": f"k{i}", "title": "Kill", "text": f"Written just before the process was killed, number {i}."}
            for i in range(3)]
    for doc in docs:
        assert _upsert(server, [doc]).status_code == 200
    server.kill()  # right after the last acknowledgement: no shutdown code runs
    wal = fresh_index / WAL
    logged = wal.read_bytes()
    assert logged.count(b"\n") == 3  # the log, not a save, holds the writes
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


def test_one_writer_per_folder_readers_see_checkpoints(fresh_index, token_file, tmp_path):
    """While a server writes a folder, a second writer is refused and the CLI reads the last checkpoint;
    a clean stop folds the log into the folder, which the CLI then reads."""
    def info() -> dict:
        result = subprocess.run([sys.executable, "-m", "embedkit.cli.main", "index", "info", str(fresh_index),
                                 "--json"], capture_output=True, text=True, env=server_env(), timeout=300)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    server = _serve(fresh_index, token_file, tmp_path / "a.log")
    assert _upsert(server, [{"id": "clean", "title": "Clean", "text": "saved at a clean stop"}]).status_code == 200
    assert server.delete("/documents/d6", token=TOKEN).status_code == 200
    second = subprocess.run([sys.executable, "-m", "embedkit.cli.main", "serve", str(fresh_index), "--port", "0",
                             "--token-file", str(token_file)], capture_output=True, text=True, env=server_env(),
                            timeout=300)
    assert second.returncode == 2
    assert "another writer holds the index" in second.stderr and "embedkit serve" in second.stderr
    assert info()["count"] == 6  # the checkpoint, without the logged writes
    server.stop()
    assert (fresh_index / WAL).stat().st_size == 0
    after = info()
    assert after["count"] == 6 + 1 - 1 and after["bm25"] == 6


def _saved_files(folder) -> list[str]:
    """The index's own files (not the log, not the lock file)."""
    return sorted(p.name for p in folder.iterdir() if p.name != WAL and not p.name.startswith("."))


def test_a_log_past_its_size_is_folded_in_while_serving(fresh_index, token_file, tmp_path):
    with _serve(fresh_index, token_file, tmp_path / "a.log", "--checkpoint-bytes", "1") as server:
        before = _saved_files(fresh_index)
        assert _upsert(server, [{"id": "cp", "text": "checkpointed while serving"}]).status_code == 200
        deadline = time.monotonic() + 60
        while (fresh_index / WAL).stat().st_size and time.monotonic() < deadline:
            time.sleep(0.05)  # the checkpoint runs right after the acknowledgement
        assert (fresh_index / WAL).stat().st_size == 0 and _saved_files(fresh_index) != before
        assert server.post("/search", json={"query": "checkpointed", "mode": "bm25"}).json()["hits"][0]["id"] == "cp"
        from embedkit.index import FaissIndex

        assert "cp" in FaissIndex.load(fresh_index)  # what a reader of the folder now sees
