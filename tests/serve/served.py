"""A real `tether serve` process on loopback, for the tests: started, waited for, killed."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
SERVED_NAME = "tiny"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """``python -m tether serve --model CHECKPOINT`` on a free loopback port; its output goes to ``log``."""

    def __init__(self, checkpoint, log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = Path(log_dir) / f"serve-{self.port}.log"
        command = [sys.executable, "-m", "tether", "serve", "--model", str(checkpoint)]
        command += ["--port", str(self.port), "--served-model-name", SERVED_NAME, "--max-batch-size", "4"]
        env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait_until_ready()

    def _wait_until_ready(self, limit_s: float = 300.0) -> None:
        deadline = time.monotonic() + limit_s  # a guard against a hung start, not a timing assertion
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tether serve exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"tether serve did not start: {self.log.read_text()[-3000:]}")

    def completions_answered(self) -> int:
        """Chat completions the server answered (uvicorn's access log: one line per response)."""
        return self.log.read_text().count('"POST /v1/chat/completions HTTP/1.1" 200')

    def kill(self) -> None:
        """SIGKILL: no shutdown, requests in flight are cut."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
