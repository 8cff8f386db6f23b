"""`GANColourizer`: adversarial fine-tuning of a colour U-Net as a fastai Callback.

The generator stays `learn.model`, trained by `learn.opt` (fastai's, untouched), so `fit_one_cycle`, `lr_find`,
`show_results`, `save/load` and `export` work as for any Learner. The callback owns the conditional
discriminator `disc` and its *own* optimiser `disc_opt`:

  after_pred  (training batches): D step on (L, ab_real) vs (L, ab_fake.detach()) with D's own zero_grad,
              backward and step (and its own GradScaler under fp16): G is untouched.
  after_loss  (training batches): the Learner's loss (L1 on ab) becomes BCE(D(L, ab_fake), real) + lambda * L1,
              with D's parameters frozen for that graph, so G's backward and step never touch D.
  validation: untouched, so `valid_loss` stays the plain L1 of the U-Net phase.

D (and its optimiser state) rides along in the model's state dict under `gan_colourizer.*`, so `learn.save`
writes it into the same file, `learn.load` restores it, and `lr_find` (which saves and reloads) leaves both nets
as it found them. It is never pickled, so `learn.export` writes the generator only (a Learner exported with the
callback attached carries an inert one; remove the callback before exporting to leave no trace).
"""
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from fastai.callback.core import Callback, CancelBatchException
from fastai.learner import ValueMetric
from fastai.torch_core import get_model

from .models import PatchDiscriminator, check_colouriser, as_plain
from .distributed import is_distributed, broadcast_module, all_reduce_grads

__all__ = ['GANColourizer', 'STATE_KEY']

STATE_KEY = 'gan_colourizer'
LOSS_NAMES = ('loss_D', 'loss_G_GAN', 'loss_G_L1')



class GANColourizer(Callback):
    """Adds a conditional PatchGAN to a colour Learner: G loss = BCE(D(L, G(L)), real) + `lambda_l1` * L1.
    `disc`: a discriminator taking L and ab concatenated (3 channels); by default a `PatchDiscriminator` fitted
    to the image size. `d_lr`, `betas`: D's Adam. `label_smoothing`: D's real target is 1 - label_smoothing.
    `d_warmup_batches`: that many first training batches train only D on the pretrained G (NoGAN-style).
    `spectral`: spectral norm in the default D."""
    order = 20                          # before Recorder (50): its loss columns are in place when Recorder reads them
    _stateattrs = ('disc', 'disc_opt', 'disc_scaler', '_hooks', '_sums')
    disc = disc_opt = disc_scaler = _sums = _avgs = None     # also what an exported (unpickled) callback has
    _count, _amp, _ddp = 0, None, False

    def __init__(self, lambda_l1=100., d_lr=2e-4, betas=(0.5, 0.999), label_smoothing=0., d_warmup_batches=0,
                 disc=None, spectral=False):
        if lambda_l1 < 0: raise ValueError(f"lambda_l1 must be >= 0, got {lambda_l1}")
        if d_lr <= 0: raise ValueError(f"d_lr must be > 0, got {d_lr}")
        if not 0 <= label_smoothing < 1: raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if d_warmup_batches < 0: raise ValueError(f"d_warmup_batches must be >= 0, got {d_warmup_batches}")
        if disc is not None and not isinstance(disc, nn.Module): raise TypeError("disc must be an nn.Module")
        self.lambda_l1, self.d_lr, self.betas = float(lambda_l1), d_lr, tuple(betas)
        self.label_smoothing, self.d_warmup_batches, self.spectral = label_smoothing, d_warmup_batches, spectral
        self.disc, self.n_batches, self._hooks = disc, 0, []
        self._reset_sums()

    # ------------------------------------------------------------------ attaching to a Learner
    @property
    def learn(self): return self.__dict__.get('_learn')

    @learn.setter
    def learn(self, learn):
        if learn is self.learn: return
        self._detach()
        self.__dict__['_learn'] = learn
        if learn is not None: self._attach()

    def _attach(self):
        G = get_model(self.learn.model)
        size = getattr(G, 'img_size', None) or tuple(self.learn.dls.one_batch()[0].shape[-2:])
        check_colouriser(G, size)
        if self.disc is None: self.disc = PatchDiscriminator(3, img_size=size, spectral=self.spectral)
        self.disc.to(next(G.parameters()).device)
        self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=self.d_lr, betas=self.betas)
        # partials, not bound methods: torch tags public hooks with an attribute
        self._hooks = [G.register_state_dict_post_hook(partial(GANColourizer._state_dict_hook, self)),
                       G.register_load_state_dict_pre_hook(partial(GANColourizer._load_state_dict_hook, self))]

    def _detach(self):
        for h in self._hooks or []: h.remove()
        self._hooks = []
        if self.learn is not None:
            self.learn.metrics = [m for m in self.learn.metrics if getattr(m, '_gan_owner', None) is not self]

    # ------------------------------------------------------------------ D in the model file
    def _state_dict_hook(self, module, state, prefix, local_metadata):
        if self.disc is None: return
        for k, v in self.disc.state_dict().items(): state[f'{prefix}{STATE_KEY}.disc.{k}'] = v
        state[f'{prefix}{STATE_KEY}.disc_opt'] = self.disc_opt.state_dict()
        state[f'{prefix}{STATE_KEY}.n_batches'] = torch.tensor(self.n_batches)

    def _load_state_dict_hook(self, module, state, prefix, *args):
        pre = f'{prefix}{STATE_KEY}.'
        ours = {k[len(pre):]: state.pop(k) for k in [k for k in state if k.startswith(pre)]}
        if not ours: return                 # e.g. a U-Net-only checkpoint: D stays as it is
        disc_state = {k[len('disc.'):]: v for k, v in ours.items() if k.startswith('disc.')}
        res = self.disc.load_state_dict(disc_state, strict=False)
        if res.missing_keys or res.unexpected_keys:
            raise ValueError(f"the saved discriminator does not fit this GANColourizer's: missing keys "
                             f"{res.missing_keys[:8]}, unexpected keys {res.unexpected_keys[:8]}")
        if 'disc_opt' in ours: self.disc_opt.load_state_dict(ours['disc_opt'])
        if 'n_batches' in ours: self.n_batches = int(ours['n_batches'])

    # ------------------------------------------------------------------ recorder columns
    def _reset_sums(self): self._sums, self._count, self._avgs = None, 0, None

    def _avg(self, i):
        if not self._count: return None
        if self._avgs is None: self._avgs = (self._sums / self._count).tolist()   # one sync per epoch
        return self._avgs[i]

    def _add_metrics(self):
        if any(getattr(m, '_gan_owner', None) is self for m in self.learn.metrics): return
        mets = []
        for i, name in enumerate(LOSS_NAMES):
            m = ValueMetric(partial(self._avg, i), name)
            m._gan_owner = self
            mets.append(m)
        self.learn.metrics = list(self.learn.metrics) + mets

    # ------------------------------------------------------------------ training events
    def before_fit(self):
        if self.disc is None: return        # exported with the Learner: D was not saved, the callback is inert
        self._add_metrics()
        G = get_model(self.learn.model)
        self.disc.to(next(G.parameters()).device)
        # The autocast G runs under, as MixedPrecision (order 10, so already set up) built it: D copies it.
        ac = getattr(getattr(self.learn, 'mixed_precision', None), 'autocast', None)
        self._amp = None if ac is None else (ac.device, ac.fast_dtype)
        fp16 = self._amp is not None and self._amp[1] == torch.float16
        if fp16 and self.disc_scaler is None: self.disc_scaler = torch.amp.GradScaler('cuda')
        if not fp16: self.disc_scaler = None
        # Several processes (DDP): every D starts from rank 0's and takes the same averaged step.
        self._ddp = is_distributed()
        if self._ddp: broadcast_module(self.disc)

    def after_train(self):
        # D's BatchNorm uses each process's own batch statistics (D always runs in train mode, like DDP without
        # SyncBatchNorm); its running buffers are synced from rank 0 so every process holds the same D.
        if self._ddp and self.disc is not None: broadcast_module(self.disc, params=False)

    def before_train(self): self._reset_sums()

    def _autocast(self, device):
        """D runs in the precision G runs in: G's autocast, where it applies to this device (fastai's own
        MixedPrecision autocasts for CUDA only, so under it a CPU model and its D stay fp32)."""
        if self._amp is None or self._amp[0] != device.type: return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=self._amp[1])

    def _d_in(self, L_, ab): return torch.cat([as_plain(L_), as_plain(ab).to(L_.dtype)], 1)

    def after_pred(self):
        if not self.training or self.disc is None: return
        L_, real, fake = self.xb[0], self.yb[0], self.learn.pred.detach()
        smooth = 1. - self.label_smoothing
        with self._autocast(L_.device):
            p_real = self.disc(self._d_in(L_, real))
            p_fake = self.disc(self._d_in(L_, fake))
            loss_D = 0.5 * (F.binary_cross_entropy_with_logits(p_real, torch.full_like(p_real, smooth)) +
                            F.binary_cross_entropy_with_logits(p_fake, torch.zeros_like(p_fake)))
        self.disc_opt.zero_grad(set_to_none=True)
        (self.disc_scaler.scale(loss_D) if self.disc_scaler is not None else loss_D).backward()
        if self._ddp: all_reduce_grads(self.disc)
        if self.disc_scaler is not None:
            self.disc_scaler.step(self.disc_opt)
            self.disc_scaler.update()
        else: self.disc_opt.step()
        self._loss_D = loss_D.detach().float()
        self.n_batches += 1

    def after_loss(self):
        if not self.training or self.disc is None: return
        l1 = self.learn.loss_grad
        if self.n_batches <= self.d_warmup_batches:     # D warm-up: no G update at all
            self._record(torch.zeros_like(self._loss_D), as_plain(l1).detach().float())
            raise CancelBatchException()
        L_ = self.xb[0]
        self.disc.requires_grad_(False)         # D is a constant in G's graph: G's backward leaves it alone
        try:
            with self._autocast(L_.device):
                p = self.disc(self._d_in(L_, self.learn.pred))
                gan = F.binary_cross_entropy_with_logits(p, torch.ones_like(p))
        finally: self.disc.requires_grad_(True)
        total = gan.float() + self.lambda_l1 * as_plain(l1)
        self.learn.loss_grad = total
        self.learn.loss = total.detach().clone()
        self._record(gan.detach().float(), as_plain(l1).detach().float())

    def _record(self, gan, l1):
        "Sum the loss parts on the device: no host sync per batch."
        bs = self.xb[0].shape[0]
        vals = torch.stack([self._loss_D, gan, l1]) * bs
        self._sums = vals if self._sums is None else self._sums + vals
        self._count += bs
