"""`colour_learner` and `ColourLearner`, the fastai `Learner` it returns.

`ColourLearner` is fastai's Learner with two additions and nothing rewritten:
- `to_bf16()` / `to_fp16()` autocast on the device the model is on (a CPU model really runs in bf16; precision.py);
- `save` writes fastai's own file (`Learner.load` and `load_model` of plain fastai read it), and an attached callback
  that owns state of its own (`GANColourizer`: the discriminator and its optimiser) writes it to a file beside it,
  `<name>.<callback name>.pth`; `load` reads it back into the attached callback. So `lr_find` (which saves and loads
  the Learner around its run), checkpoints and resuming keep both nets. `export` never writes that state.
"""
import copy
import warnings

from torch import nn
from fastai.basics import Learner, Adam, params, L
from fastai.learner import mk_metric
from fastai.callback.fp16 import AMPMode
from fastai.torch_core import rank_distrib
from fastcore.meta import delegates
from fastcore.xtras import join_path_file

from .hints import HintSampler, WithHints, HintedPass
from .models import ColourUnet, colour_unet
from .precision import DeviceMixedPrecision

__all__ = ['ColourLearner', 'colour_learner']


def state_file(file, name):
    "The file beside the model file `file` (xxx.pth) that holds the state of the callback called `name`."
    return file.with_suffix(f'.{name}.pth')


class ColourLearner(Learner):
    "A fastai `Learner` whose mixed precision works on any device and whose save/load keep stateful callbacks."
    def to_fp16(self, **kwargs): return self.add_cb(DeviceMixedPrecision(**kwargs))
    def to_bf16(self): return self.add_cb(DeviceMixedPrecision(amp_mode=AMPMode.BF16))

    def _stateful_cbs(self): return [cb for cb in self.cbs if hasattr(cb, 'save_state')]

    def save(self, file, with_opt=True, **kwargs):
        """fastai's `save` (the file plain fastai reads); each attached stateful callback writes its own state beside
        it (`state_file`). Returns the model file's path."""
        file = super().save(file, with_opt=with_opt, **kwargs)
        if not rank_distrib():
            for cb in self._stateful_cbs(): cb.save_state(state_file(file, cb.name), with_opt)
        return file

    def load(self, file, device=None, with_opt=True, **kwargs):
        """fastai's `load`; an attached stateful callback whose state file lies beside the model file loads it. A state
        file with no callback attached to take it is named in a warning (the generator loaded fine)."""
        super().load(file, device=device, with_opt=with_opt, **kwargs)
        file = join_path_file(file, self.path / self.model_dir, ext='.pth')
        taken = set()
        for cb in self._stateful_cbs():
            f = state_file(file, cb.name)
            if f.is_file(): cb.load_state(f, device, with_opt); taken.add(f.name)
        for f in sorted(file.parent.iterdir()):
            name = f.name.removeprefix(file.stem + '.').removesuffix('.pth')
            if f.name != file.name and f.name.startswith(file.stem + '.') and f.suffix == '.pth' and '.' not in name \
                    and f.name not in taken:
                warnings.warn(f"{f.name} beside {file.name} holds the state of a `{name}` callback: attach one "
                              f"before `learn.load` to restore it (the generator loaded fine)")
        return self


def _unet_splitter(m):
    "Encoder (with the hint input, which belongs to the first layer) | decoder; every parameter in one of them."
    hint = params(m.hint_conv) if getattr(m, 'hint_conv', None) is not None else []
    out = [p for n in ('hint_mid', 'hint_up', 'hint_out') if getattr(m, n, None) is not None for p in params(getattr(m, n))]
    return [params(m[0]) + hint, params(m[1:]) + out]


@delegates(Learner.__init__, but=['model', 'splitter'])
def colour_learner(dls, arch='resnet18', pretrained=True, weights=None, img_size=None, class_guidance=None,
                   hints=False, loss_func=None, opt_func=Adam, unet_kwargs=None, metrics=None,
                   **kwargs) -> ColourLearner:
    """A Learner whose model is a colour U-Net on `arch` (L in, ab out in [-1, 1]) trained with L1 loss on ab.
    `arch`: a name (`resnet18`, `resnet34`, `resnet50`, `mobilenet_v2`, `resnet20_cifar`), a torchvision builder, an
    nn.Module (e.g. `resnet20_cifar(path)`) or an already built `ColourUnet`; `weights`: a state dict file for the
    encoder; `class_guidance`: a number of classes adds a `ClassGuide` (see `ClassGuidanceLoss`); `unet_kwargs` go to
    `ColourUnet` (fastai's DynamicUnet options). Every other argument is `Learner`'s (`metrics`, `cbs`, `path`,
    `model_dir`, `wd`, ...). The whole net trains (nothing frozen); the splitter separates encoder and decoder for
    `learn.freeze()` or discriminative learning rates.
    `hints=True`: the U-Net also takes colour hints (hints.py); the Learner carries a `HintSampler`, so every
    training batch, in every recipe and phase, gets hints sampled from its truth, and each metric gets a second
    column scored with 10 seeded hints per image (`WithHints`, one hinted pass per batch for all of them). An
    already built hinted U-Net as `arch` sets this by itself."""
    if isinstance(arch, ColourUnet): model = arch                       # an already built generator
    else:
        if img_size is None: img_size = tuple(dls.one_batch()[0].shape[-2:])
        model = colour_unet(arch, img_size, pretrained, weights, class_guidance=class_guidance, hints=hints,
                            **(unet_kwargs or {}))
    metrics = [mk_metric(m) for m in L(metrics)]
    cbs = L(kwargs.pop('cbs', None))
    if model.takes_hints:
        shared = HintedPass()                                   # one hinted prediction per batch for all columns
        metrics += [WithHints(copy.deepcopy(m), shared=shared) for m in metrics]
        cbs += HintSampler()
    return ColourLearner(dls, model, loss_func=loss_func or nn.L1Loss(), opt_func=opt_func, splitter=_unet_splitter,
                         metrics=metrics, cbs=cbs, **kwargs)
