"""`colour_learner` and `ColourLearner`, the fastai `Learner` it returns.

`ColourLearner` adds two things to fastai's Learner and changes nothing else:
- mixed precision on the device the model is on (`to_bf16()` on a CPU really runs in bf16; see precision.py);
- callbacks that own state of their own (`GANColourizer`'s discriminator and its optimiser) travel in the files
  `learn.save` writes and come back with `learn.load`, so `lr_find`, resuming and checkpoints keep both nets.
  Such a callback defines `saved_state(with_opt)` and `load_saved_state(state)` and calls `learn.remember(self)`
  when it trains, so that `fit(..., cbs=cb)` (which detaches the callback afterwards) still leaves its state in
  what `learn.save` writes. The file is fastai's own ({'model', 'opt'}) plus a 'callbacks' entry; a file without
  callback state is exactly what fastai writes. `export` never writes that state.
"""
import warnings

import numpy as np
import torch
from torch import nn
from fastai.basics import Learner, L, Adam, params
from fastai.callback.fp16 import AMPMode
from fastai.torch_core import get_model, rank_distrib, distrib_barrier
from fastcore.xtras import join_path_file

from .models import ColourUnet, colour_unet, predict_settings, set_predict_settings, PREDICT_DEFAULTS
from .precision import DeviceMixedPrecision

__all__ = ['ColourLearner', 'colour_learner']

CALLBACKS_KEY = 'callbacks'
PREDICT_KEY = 'predict'           # a ColourUnet's eval-mode settings (flip averaging, chroma gain)
KNOWN_STATE = {'gan_colourizer': " (GANColourizer's discriminator and its optimiser)"}


def _torch_load(file, device):
    "torch.load with weights_only, allowing the few types fastai's optimiser state holds (as fastai's load_model)."
    core = getattr(np, '_core', None) or np.core
    with torch.serialization.safe_globals([L, core.multiarray.scalar, np.dtype,
                                           *[getattr(np.dtypes, dt) for dt in np.dtypes.__all__]]):
        return torch.load(file, map_location=device, weights_only=True)


class ColourLearner(Learner):
    "A fastai `Learner` whose save/load carry stateful callbacks and whose mixed precision works on any device."
    def to_fp16(self, **kwargs): return self.add_cb(DeviceMixedPrecision(**kwargs))
    def to_bf16(self): return self.add_cb(DeviceMixedPrecision(amp_mode=AMPMode.BF16))

    # ------------------------------------------------------------------ callback state in model files
    def remember(self, cb):
        "Keep `cb`'s state in what `save` writes, also after `fit(..., cbs=cb)` has detached it."
        self.__dict__.setdefault('_trained_with', {})[cb.name] = cb

    def stateful_cbs(self) -> dict:
        "name -> callback whose state `save` writes: the ones that trained this Learner, then the attached ones."
        found = dict(self.__dict__.get('_trained_with', {}))
        found.update({cb.name: cb for cb in self.cbs if hasattr(cb, 'saved_state')})
        return found

    def save(self, file, with_opt=True, pickle_protocol=2, **torch_save_kwargs):
        "fastai's `save`, plus the state of stateful callbacks (e.g. the GAN's discriminator and its optimiser)."
        file = join_path_file(file, self.path / self.model_dir, ext='.pth')
        if rank_distrib(): return file                  # only rank 0 writes
        extra = {n: cb.saved_state(with_opt) for n, cb in self.stateful_cbs().items()}
        extra = {n: s for n, s in extra.items() if s is not None}
        G = get_model(self.model)
        state = G.state_dict()
        opt = getattr(self, 'opt', None)
        settings = predict_settings(G) if isinstance(G, ColourUnet) else PREDICT_DEFAULTS
        settings = settings if settings != PREDICT_DEFAULTS else None          # plain models: files as before
        if (with_opt and opt is not None) or extra or settings:
            state = {'model': state, **({'opt': opt.state_dict()} if with_opt and opt is not None else {})}
        if extra: state[CALLBACKS_KEY] = extra
        if settings: state[PREDICT_KEY] = settings
        torch.save(state, file, pickle_protocol=pickle_protocol, **torch_save_kwargs)
        return file

    def load(self, file, device=None, with_opt=True, strict=True, **kwargs):
        "fastai's `load`; callback state in the file goes to the callback of the same name (attached or remembered)."
        if device is None and hasattr(self.dls, 'device'): device = self.dls.device
        if isinstance(device, int): device = torch.device('cuda', device)
        if self.opt is None: self.create_opt()
        file = join_path_file(file, self.path / self.model_dir, ext='.pth')
        distrib_barrier()
        state = _torch_load(file, device or 'cpu')
        nested = isinstance(state, dict) and 'model' in state and set(state) <= {'model', 'opt', CALLBACKS_KEY,
                                                                                 PREDICT_KEY}
        G = get_model(self.model)
        G.load_state_dict(state['model'] if nested else state, strict=strict)
        if isinstance(G, ColourUnet): set_predict_settings(G, state.get(PREDICT_KEY) if nested else None)
        if with_opt:
            if nested and 'opt' in state:
                try: self.opt.load_state_dict(state['opt'])
                except Exception: warnings.warn("Could not load the optimizer state.")
            else: warnings.warn("Saved file doesn't contain an optimizer state.")
        cbs = self.stateful_cbs()
        for name, s in (state.get(CALLBACKS_KEY, {}) if nested else {}).items():
            if name in cbs: cbs[name].load_saved_state(s, self)
            else: warnings.warn(f"{file.name} also holds the state of a `{name}` callback"
                                f"{KNOWN_STATE.get(name, '')}: attach one before `learn.load` to restore it "
                                f"(the generator loaded fine)")
        return self

    def export(self, fname='export.pkl', **kwargs):
        "fastai's `export`: the generator only; remembered callback state is never written."
        reg = self.__dict__.pop('_trained_with', None)
        try: return super().export(fname, **kwargs)
        finally:
            if reg is not None: self._trained_with = reg


def _unet_splitter(m): return [params(m[0]), params(m[1:])]


def colour_learner(dls, arch='resnet18', pretrained=True, metrics=None, weights=None, loss_func=None,
                   opt_func=Adam, img_size=None, **unet_kwargs) -> ColourLearner:
    """A Learner whose model is a colour U-Net on `arch` (L in, ab out in [-1, 1]) trained with L1 loss on ab.
    `arch`: a name in KNOWN_ARCHS, a torchvision builder (e.g. `resnet18`), an nn.Module (e.g.
    `resnet20_cifar(path)`) or an already built `ColourUnet`; `weights`: a state dict file for the encoder. The
    whole net trains (nothing frozen); the splitter separates encoder and decoder for `learn.freeze()` or
    discriminative learning rates. Returns a `ColourLearner` (see the module docstring)."""
    if isinstance(arch, ColourUnet): model = arch                       # an already built generator
    else:
        if img_size is None: img_size = tuple(dls.one_batch()[0].shape[-2:])
        model = colour_unet(arch, img_size, pretrained, weights, **unet_kwargs)
    return ColourLearner(dls, model, loss_func=loss_func or nn.L1Loss(), metrics=metrics, opt_func=opt_func,
                         splitter=_unet_splitter)
