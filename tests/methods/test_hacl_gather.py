"""Gathering embeddings across processes (two CPU processes over gloo) gives the full-batch loss."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from tether.methods.hacl import gather_across_processes
from tether.methods.hacl_loss import hacl_contrastive_loss


def _global_batch():
    g = torch.Generator().manual_seed(1)
    image, text, negative = (
        F.normalize(torch.randn(4, 5, generator=g, dtype=torch.float64), dim=-1) for _ in range(3)
    )
    return image, text, negative, torch.tensor([True, True, False, True])


def _worker(rank: int, port: int, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        image, text, negative, has = _global_batch()
        rows = slice(2 * rank, 2 * rank + 2)
        local = [x[rows].clone().requires_grad_() for x in (image, text, negative)]
        gathered = gather_across_processes(*local, has[rows])
        loss_v, loss_t = hacl_contrastive_loss(*gathered, torch.tensor(0.1, dtype=torch.float64))
        (loss_v + loss_t).backward()
        results[rank] = ((loss_v + loss_t).item(), local[0].grad.clone(), gathered[3].tolist())
    finally:
        dist.destroy_process_group()


def test_gather_gives_full_batch_loss_and_gradients():
    image, text, negative, has = _global_batch()
    image = image.clone().requires_grad_()
    loss_v, loss_t = hacl_contrastive_loss(image, text, negative, has, torch.tensor(0.1, dtype=torch.float64))
    (loss_v + loss_t).backward()

    with torch.multiprocessing.Manager() as manager:
        results = manager.dict()
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.spawn(_worker, args=(port, results), nprocs=2, join=True)
        results = dict(results)
    for rank in (0, 1):
        loss, grad, mask = results[rank]
        assert abs(loss - (loss_v + loss_t).item()) < 1e-10  # every rank sees the global batch
        assert mask == has.tolist()
        # all_gather's backward sums every rank's gradient for this shard; DDP then averages over the 2 ranks
        assert torch.allclose(grad, 2 * image.grad[2 * rank : 2 * rank + 2], atol=1e-10)


def test_no_process_group_is_a_no_op():
    x = torch.ones(2, 3)
    assert gather_across_processes(x)[0] is x
