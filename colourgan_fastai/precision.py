"""Mixed precision on the device the model is on, CPU included.

fastai's `MixedPrecision` always autocasts for CUDA, so on a CPU `learn.to_bf16()` silently trains in fp32.
On CPUs with bf16 units (AVX512-BF16, AMX) GAN training runs 1.5-1.7x faster in bf16 with the same held-out
quality (bench/RESULTS.md), so `ColourLearner.to_bf16()` adds this `MixedPrecision`, which autocasts where the
model lives. Without bf16 units the CPU emulates bf16 and is slower: measure first. bf16 has fp32's
range, so no loss scaling; fp16 stays GPU-only (it needs a GradScaler and CPU kernels gain nothing from it).
"""
import torch
from fastai.basics import Learner, L
from fastai.callback.fp16 import MixedPrecision as _CudaMixedPrecision, AMPMode

__all__ = ['MixedPrecision', 'ColourLearner', 'autocast_device']


def autocast_device(learn) -> torch.device:
    "Where the Learner's model lives (its parameters), else where its DataLoaders put batches."
    p = next(learn.model.parameters(), None)
    if p is not None: return p.device
    return getattr(learn.dls, 'device', None) or torch.device('cpu')


class MixedPrecision(_CudaMixedPrecision):
    "fastai's `MixedPrecision`, autocasting on the model's device: bf16 on CPU works, fp16 on CPU is refused."
    def before_fit(self):
        dev = autocast_device(self.learn).type
        if dev == 'cuda': return super().before_fit()
        if AMPMode(self.amp_mode) != AMPMode.BF16:
            raise ValueError(f"fp16 mixed precision needs a GPU (the model is on {dev}); use learn.to_bf16() on a CPU")
        self.autocast = torch.autocast(dev, dtype=torch.bfloat16)
        self.learn.scaler, self.scales = torch.amp.GradScaler(dev, enabled=False), L()


class ColourLearner(Learner):
    "A fastai `Learner` whose `to_bf16()` / `to_fp16()` autocast on the model's device (CPU bf16 included)."
    def to_fp16(self, **kwargs): return self.add_cb(MixedPrecision(**kwargs))
    def to_bf16(self): return self.add_cb(MixedPrecision(amp_mode=AMPMode.BF16))
