"""A real ``embedkit serve`` process on 127.0.0.1 for tests: start it, wait for /health, stop or kill it."""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"
LONG_TEXT = ("Bicycles are pedal driven vehicles with two wheels. " * 6).strip()  # chunked by the test index
STARTED: list["Server"] = []  # every server a test started; conftest kills those still running after it


def _die_with_parent() -> None:
    """In the child: SIGKILL when the test process dies, so an interrupted run leaves no server behind."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def server_env() -> dict:
    """This checkout's code (PYTHONPATH wins over an installed embedkit), offline, quiet."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


class Server:
    """``embedkit serve`` in a child process; ``args`` after ``serve`` (``--port 0`` is added)."""

    def __init__(self, args: list[str], log_path: Path):
        self.args, self.log_path = [str(a) for a in args], Path(log_path)
        self.proc: subprocess.Popen | None = None
        self.base = ""
        self.client: httpx.Client | None = None

    def start(self, timeout: float = 180) -> "Server":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "embedkit.cli.main", "serve", *self.args, "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=self._log, env=server_env(), cwd=ROOT,
                                     preexec_fn=_die_with_parent)
        STARTED.append(self)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout] and lines.put(None),
                         daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self.base:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server did not start: {self.log_tail()}")
            match = re.search(rb"listening on (http://[\d.]+:\d+)", line)
            if match:
                self.base = match.group(1).decode()
        self.client = httpx.Client(base_url=self.base, timeout=60)
        while True:
            try:
                if self.client.get("/health").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server never became healthy: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def get(self, path: str, **kw) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, json=None, token: str | None = None, **kw) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.post(path, json=json, headers=headers, **kw)

    def delete(self, path: str, token: str | None = None, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.client.delete(path, headers=headers, **kw)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (a clean stop: queued writes finish, a checkpoint is saved) and wait; uvicorn ends a
        clean stop by raising the signal again, so the status is -SIGTERM."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._close()
        return code

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed by the server."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._close()

    def _close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "Server":
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


def build_index(model_dir: Path, out: Path, documents: dict[str, tuple[str, str]], bm25: bool = True,
                chunk_tokens: int | None = None) -> Path:
    """An index folder over ``documents`` ({id: (title, text)}) encoded with the model at ``model_dir``."""
    from embedkit.data.records import Document
    from embedkit.index import BM25Index, IndexFolder, build_index as build
    from embedkit.models import load_model

    docs = [Document(i, title, text) for i, (title, text) in documents.items()]
    model = load_model(str(model_dir), device="cpu")
    index = build(model, docs, chunk_tokens=chunk_tokens, chunk_overlap=4, model_source=str(model_dir),
                  show_progress=False)
    IndexFolder(index, BM25Index.from_documents(docs) if bm25 else None).save(out)
    return out


def error_of(response: httpx.Response) -> dict:
    """The error object of a failed response, checking it is one JSON line in the service's shape."""
    body = response.text
    assert "\n" not in body.strip(), body
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == response.status_code, error
    return error
