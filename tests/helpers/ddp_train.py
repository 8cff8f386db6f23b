"""Launched by tests/test_distributed.py with torchrun (2 CPU processes, gloo): trains G and D with
distrib_ctx and writes this rank's weights and losses to OUT/rank<r>.pt. A second argument `hints` trains a U-Net
that takes colour hints (each batch's hints sampled by HintSampler on its own rank)."""
import sys
import warnings

import torch
warnings.simplefilter('ignore')
torch.set_num_threads(1)
from fastai.torch_core import set_seed
from fastai.distributed import rank_distrib
from colourgan_fastai import sample_photos_dls, colour_learner, GANColourizer, cpu_distrib_ctx

out = sys.argv[1]
set_seed(0)                                   # same initial G on every rank (DDP also broadcasts it)
dls = sample_photos_dls(size=32, n=80, bs=8, cache=True)   # CachedDL, as cifar10_dls/stl10_dls give by default
hints = sys.argv[2:] == ['hints']
learn = colour_learner(dls, arch='resnet20_cifar', pretrained=False, hints=hints)
learn.add_cb(GANColourizer())
with cpu_distrib_ctx(learn):
    learn.fit(1, 1e-3)
gan = learn.gan_colourizer
r = rank_distrib()
torch.save({'G': {k: v for k, v in learn.model.state_dict().items() if torch.is_tensor(v)},
            'D': gan.disc.state_dict(), 'losses': learn.recorder.values[-1],
            'n_batches': gan.n_batches, 'rank': r}, f'{out}/rank{r}.pt')
