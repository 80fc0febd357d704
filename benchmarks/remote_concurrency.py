"""A served model under test: tether's runner with 16 requests in flight against 1, same server, same work.

    python benchmarks/remote_concurrency.py [--delay 0.1] [--rounds 3] [--sequential-questions 40]

The server is the loopback chat-completions server of the judge tests (tests/chat_server.py), answering
every request after ``--delay`` seconds, as a hosted API or a busy ``vllm serve`` does. Each side runs
``tether.eval.runner.run_benchmark`` on POPE-style questions about small generated images through
``EndpointModel`` (base64 images, samples.jsonl written per answer, scoring): concurrency 1 and 16, in
alternating rounds, each into a fresh output folder. Both sides answer the same questions per round; the
concurrent side gets 16x as many so its timed work is not dominated by start-up. Prints questions/s of
each round, min and median per side, peak RSS, and as its last line
``ratio concurrent/sequential questions_per_s: X.XX`` (medians).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from chat_server import ChatServer, hang  # noqa: E402
from tether.eval.endpoint import EndpointModel  # noqa: E402
from tether.eval.registry import get_benchmark  # noqa: E402
from tether.eval.runner import run_benchmark  # noqa: E402


def pope_questions(folder: Path, n: int):
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n):
        name = f"img{k % 50}.png"
        if not (images / name).is_file():
            Image.new("RGB", (64, 64), (k * 5 % 256, 80, 160)).save(images / name)
        rows.append({"question_id": k + 1, "image": name, "text": f"Is there a thing {k}?", "label": "yes"})
    path = folder / f"pope_{n}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return get_benchmark("pope").load_items(path), images


def one_round(server, folder: Path, n: int, concurrency: int, round_no: int) -> float:
    items, images = pope_questions(folder, n)
    endpoint = EndpointModel(server.base_url, "delayed", concurrency=concurrency, timeout=60)
    start = time.perf_counter()
    run_benchmark(
        get_benchmark("pope"),
        items,
        images_root=images,
        out_dir=folder / f"run_c{concurrency}_r{round_no}",
        decoding={"max_new_tokens": 4},
        progress=False,
        endpoint=endpoint,
    )
    seconds = time.perf_counter() - start
    assert endpoint.client.usage.calls == n
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.1, help="seconds the server waits per request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sequential-questions", type=int, default=40, help="questions per sequential round")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "not-needed-for-local-server")
    rates = {1: [], args.concurrency: []}
    sizes = {1: args.sequential_questions, args.concurrency: args.sequential_questions * args.concurrency}
    with tempfile.TemporaryDirectory() as tmp, ChatServer(default=hang(args.delay)) as server:
        for round_no in range(args.rounds):
            for concurrency in (1, args.concurrency):  # alternating sides, same server
                rate = one_round(server, Path(tmp), sizes[concurrency], concurrency, round_no)
                rates[concurrency].append(rate)
                print(f"round {round_no} concurrency {concurrency:>2}: {sizes[concurrency]} questions, "
                      f"{rate:.2f} questions/s", flush=True)  # fmt: skip
    for concurrency, values in rates.items():
        print(
            f"concurrency {concurrency:>2}: questions/s min {min(values):.2f} median {statistics.median(values):.2f}"
        )
    print(f"delay per request: {args.delay * 1000:.0f} ms")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    ratio = statistics.median(rates[args.concurrency]) / statistics.median(rates[1])
    print(f"ratio concurrent/sequential questions_per_s: {ratio:.2f}")


if __name__ == "__main__":
    main()
