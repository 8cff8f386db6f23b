"""Distributed training helpers: the opt-in CPU (gloo) fix for fastai's `DistributedDL`, and the collectives
GANColourizer uses to keep D in sync across processes.

fastai 2.8's `DistributedDL._broadcast` moves the shuffled indices to CUDA before broadcasting them ("nccl only
works with cuda tensors"), which fails on CPU processes with the gloo backend. Importing this package changes
nothing in fastai; `cpu_distrib_ctx(learn)` is `learn.distrib_ctx(cpu=True, sync_bn=False)` with the broadcast kept
on the CPU for its duration (`gloo_broadcast()` alone is that fix as a context manager). On GPUs, use fastai's
own `learn.distrib_ctx()`.
"""
from contextlib import contextmanager

import torch
import torch.distributed as dist
from fastai.distributed import DistributedDL

__all__ = ['cpu_distrib_ctx', 'gloo_broadcast', 'is_distributed', 'broadcast_module', 'all_reduce_grads']


def _broadcast(self, t, rank):
    "Broadcast the list `t` from `rank`; on the GPU only for NCCL (which needs it), on the CPU for gloo."
    t = torch.LongTensor(t)
    if dist.get_backend() == 'nccl': t = t.cuda()
    dist.broadcast(t, rank)
    return t.cpu().tolist()


@contextmanager
def gloo_broadcast():
    "Within the block, fastai's `DistributedDL` broadcasts its shuffled indices on the CPU unless the backend is NCCL."
    old = DistributedDL.__dict__['_broadcast']
    DistributedDL._broadcast = _broadcast
    try: yield
    finally: DistributedDL._broadcast = old


@contextmanager
def cpu_distrib_ctx(learn, **kwargs):
    """Distributed training on CPU processes (gloo, e.g. `torchrun --nproc_per_node 2 train.py`): fastai's
    `learn.distrib_ctx(cpu=True, sync_bn=False, **kwargs)` inside `gloo_broadcast()`."""
    with gloo_broadcast(), learn.distrib_ctx(cpu=True, sync_bn=False, **kwargs) as l: yield l


def is_distributed() -> bool: return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_module(module, src=0, params=True):
    "Copy `module`'s parameters (unless `params=False`) and buffers from rank `src` to every rank."
    with torch.no_grad():
        for t in (list(module.parameters()) if params else []) + list(module.buffers()): dist.broadcast(t.data, src)


def all_reduce_grads(module):
    "Average the gradients of `module` over all ranks in one flat all-reduce (what DDP does, for a net not wrapped)."
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads: return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    i = 0
    for g in grads:
        g.copy_(flat[i:i + g.numel()].view_as(g)); i += g.numel()
