"""Mixed precision on the device the model is on, CPU included, and whether a CPU computes bf16 natively.

fastai's `MixedPrecision` always autocasts for CUDA, so on a CPU `learn.to_bf16()` silently trains in fp32.
On CPUs with bf16 units (AVX512-BF16 or AMX) GAN training runs 1.5-1.7x faster in bf16 with the same held-out
quality (bench/RESULTS.md), so `ColourLearner.to_bf16()` adds `DeviceMixedPrecision`, which autocasts where the
model lives. A CPU *without* those units (AVX2-only, most laptops) emulates bf16 and runs 10-25x slower than fp32:
`DeviceMixedPrecision` warns there and says to stay in fp32. bf16 has fp32's range, so no loss scaling; fp16
stays GPU-only (it needs a GradScaler and CPU kernels gain nothing from it).
"""
import warnings
from pathlib import Path

import torch
from fastai.basics import L
from fastai.callback.fp16 import MixedPrecision, AMPMode

__all__ = ['DeviceMixedPrecision', 'autocast_device', 'cpu_bf16_native', 'cpu_description', 'BF16_CPU_FLAGS']

BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')          # /proc/cpuinfo flags of CPUs with native bf16 arithmetic


def _cpu_flags():
    try: text = Path('/proc/cpuinfo').read_text()
    except OSError: return None
    line = next((l for l in text.splitlines() if l.startswith(('flags', 'Features'))), None)
    return set(line.split(':', 1)[1].split()) if line else None


def cpu_bf16_native(flags=None):
    """True where the CPU has bf16 units (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo), False where it has not
    (bf16 is emulated there: 10-25x slower than fp32), None where it cannot be told (no /proc/cpuinfo)."""
    flags = _cpu_flags() if flags is None else set(flags)
    if flags is None: return None
    return any(f in flags for f in BF16_CPU_FLAGS)


def cpu_description():
    "One line: the CPU's model name, PyTorch's CPU capability and whether bf16 is native (for benchmark headers)."
    try: name = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines()
                      if l.startswith('model name')), 'unknown CPU')
    except OSError: name = 'unknown CPU'
    native = cpu_bf16_native()
    bf16 = {True: 'native bf16 (AVX512-BF16/AMX)', False: 'no bf16 units: bf16 is emulated',
            None: 'bf16 support unknown'}[native]
    return f"{name}, {torch.get_num_threads()} threads, torch CPU capability {torch.backends.cpu.get_cpu_capability()}, {bf16}"


def autocast_device(learn) -> torch.device:
    "Where the Learner's model lives (its parameters), else where its DataLoaders put batches."
    p = next(learn.model.parameters(), None)
    if p is not None: return p.device
    return getattr(learn.dls, 'device', None) or torch.device('cpu')


class DeviceMixedPrecision(MixedPrecision):
    """fastai's `MixedPrecision`, autocasting on the model's device: bf16 on CPU works (with a warning where the CPU
    would emulate it), fp16 on CPU is refused."""
    def before_fit(self):
        dev = autocast_device(self.learn).type
        if dev == 'cuda': return super().before_fit()
        if AMPMode(self.amp_mode) != AMPMode.BF16:
            raise ValueError(f"fp16 mixed precision needs a GPU (the model is on {dev}); use learn.to_bf16() on a CPU")
        if dev == 'cpu' and cpu_bf16_native() is False:
            warnings.warn("bf16 on this CPU is emulated (no AVX512-BF16 or AMX units): training will be about 10-25x "
                          "slower than fp32. Remove it with learn.to_fp32() (CLI: drop --bf16).", stacklevel=2)
        self.autocast = torch.autocast(dev, dtype=torch.bfloat16)
        self.learn.scaler, self.scales = torch.amp.GradScaler(dev, enabled=False), L()
