"""Data-parallel training over several processes with ``torch.distributed``, launched by ``torchrun``.

    torchrun --standalone --nproc_per_node=4 -m paper_reproductions.train --method avb --arch conv --steps 10000

Each process holds a full copy of the method. Per iteration, every player's step runs on each rank's slice
of one *global* batch (:class:`ShardedSampler`), its gradients are averaged over the ranks with one
``all_reduce`` (:func:`allreduce_mean_`, called by :func:`lib.train.fit`), and each rank applies the same
Adam update -- so after N iterations the parameters are those of a single process trained on the global
batch, to floating-point tolerance (tested on CPU with the ``gloo`` backend and two processes).

Why not the ``DistributedDataParallel`` wrapper: DDP hooks a module's ``forward``, whereas our players are
updated through ``Method.loss(player, x)``, which calls several submodules and leaves the other players'
parameters frozen; wrapped players then raise DDP's unused-parameter errors (or need
``find_unused_parameters=True`` and one wrapper per player). Averaging each player's gradients ourselves,
missing gradients counted as zeros, is what DDP does without its bucketing, and it is exact by construction.

Conventions: noise seeds are offset by the rank (:func:`setup` returns ``seed + rank``), the data order is
shared (the sampler's own generator, seeded identically on every rank), and only rank 0 writes logs and
checkpoints (:func:`lib.train.fit`).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup(seed: int, device: str = "auto", backend: str | None = None) -> tuple[int, int, torch.device, int]:
    """Join the process group that ``torchrun`` describes in the environment (``RANK``, ``WORLD_SIZE``, ...).

    Without those variables (a plain ``python`` launch) nothing is initialised and this is one process.
    device: ``"auto"`` -> ``cuda:<LOCAL_RANK>`` when CUDA is available, else ``cpu``.
    backend: default ``nccl`` on CUDA, ``gloo`` on the CPU.
    returns: (rank, world size, device, the seed for this rank's noise = seed + rank).
    raises RuntimeError if CUDA is requested but absent, or if there are fewer GPUs than local ranks.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} was requested but CUDA is not available here; use --device cpu")
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                               f"use --nproc_per_node <= {torch.cuda.device_count()}")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if "WORLD_SIZE" in os.environ and not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if dev.type == "cuda" else "gloo"))
    rank, world = rank_and_world()
    return rank, world, dev, seed + rank


def cleanup() -> None:
    """Leave the process group (if any), after a barrier: tearing down the connections while a peer still completes
    its last collective can abort that peer (gloo: "terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (a no-op in one process)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def allreduce_mean_(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor by its mean over the ranks, in place, with one flat ``all_reduce``.

    tensors: same dtype and device on every rank, in the same order. A no-op in one process.
    """
    if not is_distributed() or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset: offset + t.numel()].view_as(t))
        offset += t.numel()


def gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in one process."""
    if not is_distributed():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


class ShardedSampler:
    """Each rank's slice of one global batch, drawn by index from a tensor resident on the device.

    All ranks shuffle with the same private generator (seeded with ``seed``, not the rank-offset one), so
    together they read the global batch ``data[perm[pos : pos + batch_size * world]]`` that a single process
    with batch ``batch_size * world`` reads; rank r returns rows ``[r * batch_size, (r + 1) * batch_size)``.
    Outside a process group it is an ordinary shuffling sampler with its own generator.

    data: (N, ...) tensor; batch_size: per rank. transform: applied to each batch (e.g. ``lib.data.binarize``,
    which draws from the rank-offset global RNG).
    raises ValueError if the global batch does not fit in ``data``.
    """

    def __init__(self, data: torch.Tensor, batch_size: int, seed: int, transform=None,
                 rank: int | None = None, world: int | None = None):
        r, w = rank_and_world()
        self.rank, self.world = (r if rank is None else rank), (w if world is None else world)
        if batch_size < 1 or batch_size * self.world > data.shape[0]:
            raise ValueError(f"batch_size * world size = {batch_size} * {self.world} must be in [1, {data.shape[0]}]")
        self.data, self.batch_size, self.transform = data, batch_size, transform
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self._reshuffle()
        self.epoch = 0

    def _reshuffle(self) -> None:
        self.perm = torch.randperm(self.data.shape[0], generator=self.generator).to(self.data.device)
        self.pos = 0

    def next(self) -> torch.Tensor:
        """This rank's (batch_size, ...) rows of the next global batch (transformed, if a transform was given)."""
        step = self.batch_size * self.world
        if self.pos + step > self.perm.numel():
            self._reshuffle()
            self.epoch += 1
        start = self.pos + self.rank * self.batch_size
        batch = self.data[self.perm[start: start + self.batch_size]]
        self.pos += step
        return self.transform(batch) if self.transform is not None else batch

    def state_dict(self) -> dict:
        return {"perm": self.perm.cpu(), "pos": self.pos, "epoch": self.epoch, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.perm = state["perm"].to(self.data.device)
        self.pos, self.epoch = int(state["pos"]), int(state["epoch"])
        self.generator.set_state(state["generator"])
