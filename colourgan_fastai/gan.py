"""`GANColourizer`: adversarial fine-tuning of a colour U-Net as a fastai Callback.

The generator stays `learn.model`, trained by `learn.opt` (fastai's, untouched), so `fit_one_cycle`, `lr_find`,
`show_results`, `save/load` and `export` work as for any Learner. The callback owns the conditional
discriminator `disc` and its *own* optimiser `disc_opt`, created once, at the first `before_fit` (or when
`learn.load` brings a saved D), and kept across attach/detach, so `fit(..., cbs=gan)` twice continues D's Adam:

  after_pred  (training batches): D step on (L, ab_real) vs (L, ab_fake.detach()) with D's own zero_grad,
              backward and step (and its own GradScaler under fp16): G is untouched.
  after_loss  (training batches): the Learner's loss (L1 on ab) becomes BCE(D(L, ab_fake), real) + lambda * L1,
              with D's parameters frozen for that graph, so G's backward and step never touch D.
  validation: untouched (`run_valid = False`), so `valid_loss` stays the plain L1 of the U-Net phase.

While the callback is attached, `learn.save('gan')` writes D, its optimiser state and the batch counter to
`gan.gan_colourizer.pth` beside fastai's own `gan.pth`, and `learn.load('gan')` restores them (`save_state`,
`load_state`), so `lr_find` leaves both nets as it found them and a run resumes exactly. Nothing of D lives in G:
`copy.deepcopy(learn.model)` and `torch.save(learn.model)` copy G alone, and `learn.export` writes the generator
only (D is never pickled).
"""
import torch
import torch.nn.functional as F
from torch import nn
from fastai.callback.core import Callback, CancelBatchException
from fastai.callback.fp16 import MixedPrecision
from fastai.torch_core import get_model
from fastcore.basics import store_attr

from .models import PatchDiscriminator, check_colourizer, as_plain
from .metrics import TrainLossColumn
from .distributed import is_distributed, broadcast_module, all_reduce_grads

__all__ = ['GANColourizer']

LOSS_NAMES = ('loss_D', 'loss_G_GAN', 'loss_G_L1')


class GANColourizer(Callback):
    """Adds a conditional PatchGAN to a colour Learner: G loss = BCE(D(L, G(L)), real) + `lambda_l1` * L1.
    `disc`: a discriminator taking L and ab concatenated (3 channels); by default a `PatchDiscriminator` fitted
    to the image size. `d_lr`, `betas`: D's Adam. `label_smoothing`: D's real target is 1 - label_smoothing.
    `d_warmup_batches`: that many first training batches train only D on the pretrained G (NoGAN-style).
    `spectral`: spectral norm in the default D."""
    order, run_valid = 20, False        # before Recorder (50): its loss columns are in place when Recorder reads them
    _stateattrs = ('disc', 'disc_opt', 'disc_scaler')       # never pickled (learn.export)
    disc = disc_opt = disc_scaler = None

    def __init__(self, lambda_l1=100., d_lr=2e-4, betas=(0.5, 0.999), label_smoothing=0., d_warmup_batches=0,
                 disc=None, spectral=False):
        if lambda_l1 < 0: raise ValueError(f"lambda_l1 must be >= 0, got {lambda_l1}")
        if d_lr <= 0: raise ValueError(f"d_lr must be > 0, got {d_lr}")
        if not 0 <= label_smoothing < 1: raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if d_warmup_batches < 0: raise ValueError(f"d_warmup_batches must be >= 0, got {d_warmup_batches}")
        if disc is not None and not isinstance(disc, nn.Module): raise TypeError("disc must be an nn.Module")
        super().__init__()
        lambda_l1, betas = float(lambda_l1), tuple(betas)
        store_attr('lambda_l1,d_lr,betas,label_smoothing,d_warmup_batches,spectral')
        self.disc, self.n_batches, self._amp, self._ddp = disc, 0, None, False
        self.columns = [TrainLossColumn(n) for n in LOSS_NAMES]

    def _init_state(self):
        super()._init_state()
        self.disc = self.disc_opt = self.disc_scaler = None

    # ------------------------------------------------------------------ D, built once
    def _generator(self): return get_model(self.learn.model)

    def build_disc(self):
        "Create D (fitted to G's image size) and its Adam where they do not exist yet; move D to G's device."
        G = self._generator()
        device = next(G.parameters()).device
        if self.disc is None:
            size = getattr(G, 'img_size', None) or tuple(self.learn.dls.one_batch()[0].shape[-2:])
            check_colourizer(G, size)
            self.disc = PatchDiscriminator(3, img_size=size, spectral=self.spectral)
        self.disc.to(device)
        if self.disc_opt is None:
            self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=self.d_lr, betas=self.betas)
        return self.disc

    # ------------------------------------------------------------------ D beside the model file (ColourLearner)
    def save_state(self, file, with_opt=True):
        "Write D, its optimiser (unless `with_opt=False`) and the batch counter to `file` (nothing before D exists)."
        if self.disc is None: return
        s = {'disc': self.disc.state_dict(), 'n_batches': torch.tensor(self.n_batches)}
        if with_opt and self.disc_opt is not None: s['disc_opt'] = self.disc_opt.state_dict()
        torch.save(s, file)

    def load_state(self, file, device=None, with_opt=True):
        "Read what `save_state` wrote into this callback's D (built first where it does not exist yet)."
        state = torch.load(file, map_location=device or 'cpu', weights_only=True)
        self.build_disc()
        res = self.disc.load_state_dict(state['disc'], strict=False)
        if res.missing_keys or res.unexpected_keys:
            raise ValueError(f"the saved discriminator in {file} does not fit this GANColourizer's: missing keys "
                             f"{res.missing_keys[:8]}, unexpected keys {res.unexpected_keys[:8]}")
        if with_opt and 'disc_opt' in state: self.disc_opt.load_state_dict(state['disc_opt'])
        self.n_batches = int(state['n_batches'])

    # ------------------------------------------------------------------ training events
    def before_fit(self):
        self.build_disc()
        self.learn.metrics = [m for m in self.learn.metrics if m not in self.columns] + self.columns
        # The autocast G runs under, as MixedPrecision (order 10, so already set up) built it: D copies it.
        mp = next((cb for cb in self.learn.cbs if isinstance(cb, MixedPrecision)), None)
        ac = getattr(mp, 'autocast', None)
        self._amp = None if ac is None else (ac.device, ac.fast_dtype)
        fp16 = self._amp is not None and self._amp[1] == torch.float16
        if fp16 and self.disc_scaler is None: self.disc_scaler = torch.amp.GradScaler('cuda')
        if not fp16: self.disc_scaler = None
        # Several processes (DDP): every D starts from rank 0's and takes the same averaged step.
        self._ddp = is_distributed()
        if self._ddp: broadcast_module(self.disc)

    def after_fit(self):
        self.learn.metrics = [m for m in self.learn.metrics if m not in self.columns]

    def before_train(self):
        for c in self.columns: c.reset_epoch()

    def after_train(self):
        # D's BatchNorm uses each process's own batch statistics (D always runs in train mode, like DDP without
        # SyncBatchNorm); its running buffers are synced from rank 0 so every process holds the same D.
        if self._ddp: broadcast_module(self.disc, params=False)

    def _autocast(self, device):
        """D runs in the precision G runs in: G's autocast, where it applies to this device (fastai's own
        MixedPrecision autocasts for CUDA only, so under it a CPU model and its D stay fp32)."""
        if self._amp is None or self._amp[0] != device.type: return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=self._amp[1])

    def _d_in(self, L_, ab): return torch.cat([as_plain(L_), as_plain(ab).to(L_.dtype)], 1)

    def after_pred(self):
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
        self._loss_D = loss_D.detach()
        self.n_batches += 1

    def after_loss(self):
        l1 = as_plain(self.learn.loss_grad)
        if self.n_batches <= self.d_warmup_batches:     # D warm-up: no G update at all
            self._record(torch.zeros_like(self._loss_D), l1)
            raise CancelBatchException()
        L_ = self.xb[0]
        self.disc.requires_grad_(False)         # D is a constant in G's graph: G's backward leaves it alone
        try:
            with self._autocast(L_.device):
                p = self.disc(self._d_in(L_, self.learn.pred))
                gan = F.binary_cross_entropy_with_logits(p, torch.ones_like(p))
        finally: self.disc.requires_grad_(True)
        total = gan.float() + self.lambda_l1 * l1
        self.learn.loss_grad = total
        self.learn.loss = total.detach().clone()
        self._record(gan, l1)

    def _record(self, gan, l1):
        bs = self.xb[0].shape[0]
        for c, v in zip(self.columns, (self._loss_D, gan, l1)): c.add(v, bs)
