"""Data-parallel SVI on PyTorch's distributed engine (``bayesvae.fit(..., strategy="ddp")``).

Launch one process per device with ``torchrun``; every process runs the same ``fit`` call. Each
global minibatch (``batch_size`` rows, drawn in the same seeded order on every rank) is split
into ``world_size`` equal shards; each rank computes the ELBO gradient of its shard with the
plate scaled to the full data set, the gradients are averaged with ``all_reduce`` (so every rank
takes the same optimizer step and the parameters stay identical), and rank 0 alone writes
checkpoints. Averaging the shard gradients gives exactly the single-process gradient of the
global minibatch: each shard's log-likelihood is scaled by ``N / (B / W)`` and global terms
appear once per rank, so their mean is ``(N / B) sum_i l_i + global terms``.

A user's Pyro program is not split: it runs whole on every rank, each with its own random
stream (``seed + rank``: its own guide draws and its own ``subsample_size`` minibatch), and the
averaged gradient is the mean of ``W`` independent unbiased estimates.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

__all__ = ["DDPContext", "setup_ddp"]

logger = logging.getLogger(__name__)

_LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DDPContext:
    """This process's place in the job: ``rank`` of ``world_size``, on ``device``."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            raise ValueError(
                f"batch_size ({batch_size}) must be divisible by the number of processes "
                f"({self.world_size}) for strategy='ddp': it is the global minibatch."
            )

    def local_rows(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """This rank's contiguous shard of a global minibatch (every tensor ``(B, ...)``)."""
        size = batch[0].shape[0] // self.world_size
        start = self.rank * size
        return tuple(t[start : start + size] for t in batch)

    def broadcast(self, params: list[torch.Tensor]) -> None:
        """Start every rank from rank 0's parameters."""
        import torch.distributed as dist

        with torch.no_grad():
            for param in params:
                dist.broadcast(param.data, src=0)

    def average_gradients(self, params: list[torch.Tensor], loss: torch.Tensor) -> torch.Tensor:
        """Average the gradients (and the scalar ``loss``, returned as a 0-d tensor) over all
        ranks, in one flat ``all_reduce`` that never waits for the host; a parameter without a
        gradient on some rank counts as zero there."""
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [loss.reshape(1).to(grads[0])])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for param, grad in zip(params, grads, strict=True):
            count = grad.numel()
            param.grad = flat[offset : offset + count].view_as(grad).clone()
            offset += count
        return flat[-1].clone()

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


def setup_ddp(device: torch.device) -> DDPContext:
    """Join (or start) the process group of a ``torchrun`` launch: NCCL on CUDA (one device per
    local rank), gloo on CPU. Raises ``ValueError`` when not launched by ``torchrun``."""
    import torch.distributed as dist

    if not dist.is_initialized():
        missing = [name for name in _LAUNCH_VARIABLES if name not in os.environ]
        if missing:
            raise ValueError(
                "strategy='ddp' runs one process per device, launched by torchrun (e.g. "
                "`torchrun --nproc_per_node 2 train.py`); the variables "
                f"{missing} are not set."
            )
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", rank % max(torch.cuda.device_count(), 1)))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    logger.info("ddp: rank %d of %d on %s", rank, world, device)
    return DDPContext(rank, world, device)
