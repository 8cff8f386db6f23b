"""Colour as classification over quantised ab (Zhang, Isola & Efros, "Colorful Image Colorization", 2016).

An L1 (or L2) loss on ab asks for the mean of every colour a pixel could plausibly have, and the mean of "red or
blue" is grey: the U-Net's colours come out timid. Zhang et al. instead predict, per pixel, a distribution over
the ab plane cut into 10x10 cells, train it with a cross-entropy that up-weights rare (saturated) colours, and
decode it with an *annealed mean*: the mean of the distribution sharpened by a temperature T (0.38 in the paper),
between the mode (vivid, noisy) and the mean (smooth, dull).

- `ab_bins(dls)`: the cells that the training colours occupy, and how often (the empirical prior).
- `BinnedColourUnet`: a `ColourUnet` with one output channel per cell; `forward` returns the annealed-mean ab, so
  every metric, figure, `colourize`, `export` and the GAN see a plain colouriser; the logits of the last training
  forward wait in `model.logits` for the loss. `model.temperature` can be changed at any time, also after
  `load_learner`, to trade vividness for smoothness.
- `fit_temperature(model, batches)`: the temperature at which the outputs have the truth's colourfulness on
  the given images (never the test set), instead of a training phase that asks for colour.
- `ABClassLoss(weight)`: the callback that adds the rebalanced, soft-encoded cross-entropy on those logits to the
  Learner's loss (L1 on the decoded ab stays the base loss, and the validation loss).
"""
import torch
import torch.nn.functional as F

from .lab import AB_SCALE
from .losses import LossTerm
from .models import ColourUnet

__all__ = ['ab_bins', 'rebalance_weights', 'soft_encode', 'annealed_mean', 'BinnedColourUnet', 'binned_colour_unet',
           'ABClassLoss', 'fit_temperature', 'AB_STEP', 'ANNEALED_T']

AB_STEP = 10.           # cell size in ab units (Zhang et al.): 10/110 in the network's normalised ab
ANNEALED_T = 0.38       # Zhang et al.'s decoding temperature


def _grid(step, limit=AB_SCALE):
    "All cell centres of a `step` grid over [-limit, limit]^2, normalised by AB_SCALE: (K, 2), and the grid's width."
    c = torch.arange(-limit, limit + 1e-6, step)
    a, b = torch.meshgrid(c, c, indexing='ij')
    return torch.stack([a.flatten(), b.flatten()], 1) / AB_SCALE, len(c)


def _nearest(ab, centres):
    "Index of the nearest centre for every pixel of ab (N, 2, H, W): (N, H, W)."
    px = ab.permute(0, 2, 3, 1).reshape(-1, 2).float()
    return torch.cdist(px, centres.float()).argmin(1).view(ab.shape[0], *ab.shape[2:])


@torch.no_grad()
def ab_bins(dls, step=AB_STEP, n_batches=100, min_count=1):
    """The quantised ab cells the training colours occupy: (centres (Q, 2) normalised as the network's ab, prior (Q,)
    summing to 1). Counts the nearest grid cell of every pixel in up to `n_batches` training batches (`dls.train`,
    or any iterable of (L, ab) batches) and keeps the cells seen at least `min_count` times."""
    grid, _ = _grid(step)
    counts = torch.zeros(len(grid), dtype=torch.float64)
    loader = dls.train if hasattr(dls, 'train') else dls
    for i, (_, ab) in enumerate(loader):
        if i >= n_batches: break
        ab = ab.as_subclass(torch.Tensor).cpu()
        counts += torch.bincount(_nearest(ab, grid).flatten(), minlength=len(grid)).double()
    if counts.sum() == 0: raise ValueError("ab_bins: no training batches to count colours in")
    keep = counts >= min_count
    return grid[keep].clone(), (counts[keep] / counts[keep].sum()).float()


def rebalance_weights(centres, prior, lam=0.5, sigma=5.):
    """Zhang et al.'s class rebalancing: w ∝ 1 / ((1 - lam) * p_smooth + lam / Q), scaled so that E_prior[w] = 1.
    `p_smooth` is the prior blurred by a Gaussian of `sigma` ab units over the cells. Rare (saturated) colours get
    weights above 1, the common near-greys below 1."""
    d2 = torch.cdist(centres.float(), centres.float()).pow(2) * AB_SCALE ** 2
    k = torch.exp(-d2 / (2 * sigma ** 2))
    p = (k @ prior.float()) / k.sum(1)
    p = p / p.sum()
    w = 1 / ((1 - lam) * p + lam / len(prior))
    return w / (prior.float() * w).sum()


def _knn_encode(ab, centres, k=5, sigma=5.):
    "Per pixel (row-major over N, H, W): the indices (P, k) of the `k` nearest cells, nearest first, and weights (P, k)."
    with torch.no_grad():
        px = ab.permute(0, 2, 3, 1).reshape(-1, 2).float()
        d = torch.cdist(px, centres.float()) * AB_SCALE
        dk, ik = d.topk(min(k, len(centres)), dim=1, largest=False, sorted=True)
        return ik, torch.softmax(-dk.pow(2) / (2 * sigma ** 2), 1)


def soft_encode(ab, centres, k=5, sigma=5.):
    """Each pixel's target distribution: its `k` nearest cells weighted by a Gaussian of `sigma` ab units on the
    distance (Zhang et al.'s soft encoding): (N, Q, H, W), summing to 1 over Q; plus the nearest cell (N, H, W)."""
    N, _, H, W = ab.shape
    ik, wk = _knn_encode(ab, centres, k, sigma)
    q = torch.zeros(ik.shape[0], len(centres), device=ab.device).scatter_(1, ik, wk)
    return q.view(N, H, W, -1).permute(0, 3, 1, 2), ik[:, 0].view(N, H, W)


def annealed_mean(logits, centres, temperature=ANNEALED_T):
    "ab (N, 2, H, W) = sum_q softmax(logits / T)_q * centre_q: the mode as T -> 0, the mean at T = 1."
    p = torch.softmax(logits.float() / temperature, 1)
    # channels-last: (N, H, W, Q) is then a free view and one matmul does it (an einsum over dim 1 is 5x slower)
    ab = p.permute(0, 2, 3, 1) @ centres.to(p.dtype)
    return ab.permute(0, 3, 1, 2).to(logits.dtype)


class BinnedColourUnet(ColourUnet):
    """A `ColourUnet` that classifies each pixel's colour over the quantised ab cells `centres` (Q, 2) and returns
    their annealed mean at `temperature`: a colouriser like any other (L in, ab out), whose last training logits
    are kept in `self.logits` for `ABClassLoss`. `temperature` is kept in the state dict. `prior` (Q,): how often each cell occurs in the training data
    (from `ab_bins`), kept with the weights for the loss's rebalancing."""
    def __init__(self, encoder, img_size, centres, prior, temperature=ANNEALED_T, **kwargs):
        if len(centres) != len(prior): raise ValueError(f"{len(centres)} centres but a prior of {len(prior)}")
        kwargs.pop('n_out', None); kwargs.pop('y_range', None)
        super().__init__(encoder, img_size, n_out=len(centres), y_range=None, **kwargs)
        self.register_buffer('centres', torch.as_tensor(centres).float().clone())
        self.register_buffer('prior', torch.as_tensor(prior).float().clone())
        self.register_buffer('decode_temperature', torch.tensor(float(temperature)))
        self.temperature, self.logits = temperature, None

    @property
    def temperature(self) -> float:
        "The annealed mean's temperature; a buffer, so `save`/`load`, the EMA and `export` keep a fitted one."
        return float(self.decode_temperature)

    @temperature.setter
    def temperature(self, T):
        if not float(T) > 0: raise ValueError(f"temperature must be > 0, got {T}")
        self.decode_temperature.fill_(float(T))

    def forward(self, x):
        z = super().forward(x)
        self.logits = z if self.training else None     # only while training, and never written by export
        return annealed_mean(z, self.centres, self.decode_temperature)

    def __getstate__(self):
        state = dict(super().__getstate__())        # a copy: the live model keeps its attributes
        state['logits'] = None
        return state


def binned_colour_unet(arch, img_size, dls, pretrained=True, weights=None, step=AB_STEP, n_batches=100,
                       **unet_kwargs) -> BinnedColourUnet:
    "A `BinnedColourUnet` on `arch`, with the cells and prior counted on `dls`'s training batches (`ab_bins`)."
    if isinstance(img_size, int): img_size = (img_size, img_size)
    centres, prior = ab_bins(dls, step, n_batches)
    from .encoders import encoder_body
    return BinnedColourUnet(encoder_body(arch, pretrained, weights), img_size, centres, prior, **unet_kwargs)


class ABClassLoss(LossTerm):
    """`weight` * Zhang et al.'s loss on a `BinnedColourUnet`'s logits: cross-entropy against the soft-encoded true
    ab (`k` nearest cells, Gaussian `sigma`), each pixel weighted by `rebalance_weights(lam)` of its true cell, mean
    over pixels. Added to the Learner's loss on training batches, as every `LossTerm`."""
    name = 'loss_abclass'

    def __init__(self, weight=1., lam=0.5, sigma=5., k=5):
        super().__init__(weight)
        if not 0 <= lam <= 1: raise ValueError(f"lam must be in [0, 1], got {lam}")
        self.lam, self.sigma, self.k = lam, sigma, k

    def _net(self):
        from fastai.torch_core import get_model
        m = get_model(self.learn.model)
        if not isinstance(m, BinnedColourUnet):
            raise TypeError(f"ABClassLoss needs a BinnedColourUnet (colour_learner(..., classify_ab=True)), "
                            f"not a {type(m).__name__}")
        return m

    def before_fit(self):
        super().before_fit()
        m = self._net()
        self.w = rebalance_weights(m.centres, m.prior, self.lam, self.sigma).to(m.centres.device)

    def term(self, L_, pred, target):
        m = self._net()
        z, m.logits = m.logits, None
        if z is None: raise RuntimeError("ABClassLoss: the model kept no logits (was it called in training mode?)")
        ik, wk = _knn_encode(target.as_subclass(torch.Tensor), m.centres, self.k, self.sigma)
        logp = F.log_softmax(z.float(), 1).permute(0, 2, 3, 1).reshape(-1, z.shape[1])   # (pixels, Q), as ik
        ce = -(wk * logp.gather(1, ik)).sum(1)                  # the soft target is 0 outside the k cells
        return (self.w.to(ce.device)[ik[:, 0]] * ce).mean()


@torch.no_grad()
def fit_temperature(model, batches, temps=None, n_batches=20):
    """Set `model.temperature` (a `BinnedColourUnet`) to the one, among `temps` (default 0.1 to 1.0 by 0.02), whose
    decoded outputs on `batches` (an iterable of (L, ab), e.g. a DataLoader of images held out from the test set) have
    the mean colourfulness of the truth, and return it. Each batch runs through the network once; only the
    annealed mean is recomputed per temperature. A lower temperature gives more vivid colours."""
    if not isinstance(model, BinnedColourUnet): raise TypeError(f"fit_temperature needs a BinnedColourUnet, "
                                                                f"not a {type(model).__name__}")
    from .lab import decode_lab
    from .metrics import colourfulness
    temps = [round(0.1 + 0.02 * i, 2) for i in range(46)] if temps is None else [float(t) for t in temps]
    was_training, T0 = model.training, model.temperature
    model.eval()
    cf, cf_true, n = torch.zeros(len(temps), dtype=torch.float64), 0., 0
    try:
        model.temperature = 1.
        for i, (L_, ab) in enumerate(batches):
            if i >= n_batches: break
            L_, ab = L_.as_subclass(torch.Tensor), ab.as_subclass(torch.Tensor)
            p = next(model.parameters())
            z = super(BinnedColourUnet, model).forward(L_.to(p.device, p.dtype)).float()
            L_ = L_.to(z.device)
            for j, T in enumerate(temps):
                cf[j] += colourfulness(decode_lab(L_, annealed_mean(z, model.centres, T))).sum().item()
            cf_true += colourfulness(decode_lab(L_, ab.to(z.device))).sum().item(); n += len(L_)
    finally:
        model.train(was_training); model.temperature = T0
    if n == 0: raise ValueError("fit_temperature: no batches")
    best = temps[int((cf / n - cf_true / n).abs().argmin())]
    model.temperature = best
    return best
