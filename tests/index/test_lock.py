"""The writer lock: one writer per folder across processes and threads, named when it blocks another."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from index.ixhelpers import DIM, clustered_vectors, ids_for, subprocess_env

from embedkit.cli.main import main
from embedkit.errors import IndexError_
from embedkit.index import FaissIndex, IndexFolder, IndexLockedError, writer_lock
from embedkit.index.lock import SERVER_LOG

HOLD = """
import sys, time
from embedkit.index import writer_lock
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture()
def folder(tmp_path):
    index = FaissIndex(DIM)
    index.add(ids_for(30), clustered_vectors(30))
    return index.save(tmp_path / "ix")


def hold(folder, seconds: float) -> subprocess.Popen:
    """Another process that takes the folder's writer lock and keeps it for ``seconds``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds), "--holder-mark"],
                            env=subprocess_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_waits_then_names_the_holder(folder, capsys):
    holder = hold(folder, 60)
    try:
        start = time.monotonic()
        with pytest.raises(IndexLockedError) as caught, writer_lock(folder, wait=0.3):
            pass
        assert time.monotonic() - start >= 0.3
        message = str(caught.value)
        assert message.startswith(f"{folder}: another writer holds the index (pid {holder.pid}, `")
        assert "--holder-mark" in message and "gave up after 0.3 s" in message and "\n" not in message

        assert main(["index", "remove", str(folder), "--ids", "doc1", "--wait", "0.1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"another writer holds the index (pid {holder.pid}" in err[0]
        with pytest.raises(IndexLockedError):
            FaissIndex.load(folder).save(folder, wait=0)  # plain saves take the lock too
        assert len(FaissIndex.load(folder)) == 30 and len(IndexFolder.load(folder).index) == 30  # readers need none
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with writer_lock(folder, wait=5):  # the kernel dropped the dead holder's lock
        pass
    assert main(["index", "remove", str(folder), "--ids", "doc1"]) == 0


def test_a_waiting_writer_goes_on_when_the_holder_is_done(folder):
    reader = IndexFolder.load(folder)
    holder = hold(folder, 0.5)
    start = time.monotonic()
    with IndexFolder.update(folder, wait=30) as state:
        waited = time.monotonic() - start
        state.remove(["doc2"])
    holder.wait()
    assert 0.2 < waited < 30 and "doc2" not in FaissIndex.load(folder)
    # a long-lived reader sees that the folder moved on, and the updated object is the new state
    assert IndexFolder.current_generation(folder) == state.generation != reader.generation


def test_reentrant_in_a_thread_exclusive_between_threads(folder):
    outcome = []

    def other_thread(wait):
        try:
            with writer_lock(folder, wait=wait):
                outcome.append("locked")
        except IndexLockedError as exc:
            outcome.append(str(exc))

    with writer_lock(folder):
        with writer_lock(folder, wait=0):  # the same thread again: no deadlock
            t = threading.Thread(target=other_thread, args=(0.1,))
            t.start()
            t.join()
        late = threading.Thread(target=other_thread, args=(10,))
        late.start()
        time.sleep(0.1)
        assert len(outcome) == 1 and "another thread of this process" in outcome[0]
    late.join()
    assert outcome[1] == "locked"


def test_a_save_over_a_newer_state_is_refused(folder):
    """Two objects loaded from one folder: the second save would undo the first, so it is refused."""
    first, second = FaissIndex.load(folder), FaissIndex.load(folder)
    first.add(["one"], clustered_vectors(1, seed=1))
    first.save(folder)
    second.add(["two"], clustered_vectors(1, seed=2))
    with pytest.raises(IndexError_, match="another writer saved the index after it was loaded here"):
        second.save(folder)
    assert "one" in FaissIndex.load(folder) and "two" not in FaissIndex.load(folder)
    first.add(["three"], clustered_vectors(1, seed=3))
    first.save(folder)  # its own previous save is the state it builds on
    fresh = FaissIndex(DIM)
    fresh.add(["only"], np.ones((1, DIM), dtype=np.float32))
    fresh.save(folder)  # a new index replaces what is there
    assert FaissIndex.load(folder).ids() == ["only"]


def test_a_forked_child_does_not_inherit_the_hold(folder):
    """A child forked while the parent holds the lock neither re-enters it nor keeps it after the parent lets go."""
    import os

    tried_r, tried_w = os.pipe()
    with writer_lock(folder):
        pid = os.fork()
        if pid == 0:  # the child: the lock is the parent's, so taking it must fail at once
            code = 1
            try:
                with writer_lock(folder, wait=0):
                    pass
            except IndexLockedError:
                code = 0
            finally:
                os.write(tried_w, b"x")
                time.sleep(1.0)  # still alive (its copy of the descriptor closed) when the parent lets go
                os._exit(code)
        assert os.read(tried_r, 1) == b"x"
    with writer_lock(folder, wait=0.5):  # released although the child is still running
        pass
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_server_log_with_unsaved_writes_is_replayed_by_a_server_before_anyone_else_writes(folder, capsys):
    """A server killed before its checkpoint leaves acknowledged writes in its log. A CLI writer that saved
    first would have those older writes replayed over its own later ones, so it is refused in one line
    until a server (which replays the log under the lock) has saved them."""
    log = folder / SERVER_LOG
    log.write_bytes(b"")
    with writer_lock(folder, wait=0):  # an empty log: nothing pending
        pass
    log.write_bytes(b'00000000 {"op":"delete","ids":["doc1"]}\n')
    before = sorted(p.name for p in folder.iterdir())
    assert main(["index", "remove", str(folder), "--ids", "doc2", "--wait", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{log}: a server stopped before saving writes it had acknowledged" in err[0]
    assert f"embedkit serve {folder}" in err[0]
    with pytest.raises(IndexLockedError):
        FaissIndex.load(folder).save(folder, wait=0)  # the Python API too
    assert sorted(p.name for p in folder.iterdir()) == before and len(FaissIndex.load(folder)) == 30
    with writer_lock(folder, wait=0, replays_server_log=True):  # the refusal let the lock go; a server may
        log.write_bytes(b"")  # stands for its replay, save and emptying of the log
    assert main(["index", "remove", str(folder), "--ids", "doc2"]) == 0
    assert len(FaissIndex.load(folder)) == 29
