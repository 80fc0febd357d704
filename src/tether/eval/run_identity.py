"""What a run's answers depend on: the fingerprint of an evaluation folder (``fingerprint.json``).

A rerun into the same folder resumes only when every part is the same (``claim_output``): model (or served
endpoint), data file, items, images, mode, backend, decoding, judge and model placement.
"""

import hashlib
import json

from tether.core.fingerprints import file_identity, model_identity
from tether.decoding.registry import GREEDY
from tether.models.decoding import DecodingSettings


def answer_inputs(
    benchmark, items, model_name, data_file, images_root, mode, backend, settings, judge, load_settings=None
) -> dict:
    """What the answers of a run depend on (the evaluation folder's fingerprint). The batch size is left
    out (batched answers equal batch-of-one answers), and so is decoding in fast mode (no decoding)."""
    items_digest = hashlib.sha256(
        json.dumps([[item.id, item.image, item.prompt] for item in items]).encode()
    ).hexdigest()
    return {
        "benchmark": benchmark.name,
        "model": model_identity(model_name),
        "data": file_identity(data_file),
        "items": {"count": len(items), "sha256": items_digest},
        "images": str(images_root),
        "mode": mode,
        "backend": backend,
        "decoding": _generate_decoding(settings) if mode == "generate" else _fast_decoding(settings),
        "judge": judge_record(judge),
        # device, dtype and attention kernel change the answers' numerics; recorded only when asked for
        **({"model_load": load_settings.load_options()} if load_settings is not None else {}),
    }


def _generate_decoding(settings: DecodingSettings) -> dict:
    """The decoding a generated answer depends on. Greedy (the model's own ``generate``) is recorded as it was
    before decoding strategies existed, so the folders of earlier runs resume."""
    decoding = settings.to_dict()
    if settings.strategy == GREEDY:
        del decoding["strategy"], decoding["strategy_options"]
    return decoding


def _fast_decoding(settings: DecodingSettings) -> dict | None:
    """What fast mode's answers depend on of the decoding: a strategy's, where one is chosen."""
    if settings.strategy == GREEDY:
        return None
    return {"strategy": settings.strategy, "strategy_options": settings.strategy_options}


def endpoint_identity(endpoint) -> dict:
    """What a served model's answers depend on, as far as a client can tell: the server's host name and the
    model name. The port is left out, so a server restarted on another port resumes the same run."""
    host = endpoint.client.host.rsplit(":", 1)[0] if ":" in endpoint.client.host else endpoint.client.host
    return {"host": host, "served_model": endpoint.served_model}


def judge_record(judge) -> dict | None:
    if judge is None:
        return None
    return {"name": getattr(judge, "name", type(judge).__name__), **judge.settings()}
