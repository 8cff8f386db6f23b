"""Quality metrics on decoded RGB, as fastai metrics: PSNR, SSIM, colourfulness and its gap to the truth.

Each metric decodes (L, ab_pred) and (L, ab_true) to sRGB in [0, 1] and averages a per-image score over the
validation set. PSNR alone rewards grey output: report it beside colourfulness.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from fastai.learner import Metric

from .lab import decode_lab, AB_SCALE

__all__ = ['TrainLossColumn', 'psnr', 'ssim', 'colourfulness', 'PSNR', 'SSIM', 'Colourfulness', 'DeltaColourfulness', 'colour_metrics', 'score_predictions',
           'spurious_colour', 'SpuriousColour']


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    "Per-image PSNR in dB of RGB batches in [0, 1], shape (N, 3, H, W) -> (N,)."
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def _gaussian_window(size=11, sigma=1.5, device=None):
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(pred: Tensor, target: Tensor, win_size=11, sigma=1.5) -> Tensor:
    """Per-image SSIM (Wang et al. 2004) of RGB batches in [0, 1] -> (N,): Gaussian window (11, sigma 1.5),
    population covariances, valid region, mean over channels; matches scikit-image's
    `structural_similarity(gaussian_weights=True, use_sample_covariance=False, data_range=1)`.
    Images smaller than the window use a window as large as the image allows."""
    x, y = pred.float(), target.float()
    n, c, h, w = x.shape
    win_size = min(win_size, h - (1 - h % 2), w - (1 - w % 2))
    win = _gaussian_window(win_size, sigma, x.device).expand(c, 1, win_size, win_size)
    filt = lambda t: F.conv2d(t, win, groups=c)
    ux, uy = filt(x), filt(y)
    vx, vy, vxy = filt(x * x) - ux ** 2, filt(y * y) - uy ** 2, filt(x * y) - ux * uy
    C1, C2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * ux * uy + C1) * (2 * vxy + C2)) / ((ux ** 2 + uy ** 2 + C1) * (vx + vy + C2))
    return s.flatten(1).mean(1)


def colourfulness(rgb: Tensor) -> Tensor:
    """Per-image colourfulness (Hasler & Suesstrunk 2003) of RGB in [0, 1] -> (N,), on the 0-255 scale:
    rg = |R-G|, yb = |(R+G)/2 - B|, CF = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)."""
    R, G, B = (rgb.float() * 255).unbind(-3)
    rg, yb = (R - G).abs().flatten(1), (0.5 * (R + G) - B).abs().flatten(1)
    std = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    mean = (rg.mean(1) ** 2 + yb.mean(1) ** 2).sqrt()
    return std + 0.3 * mean


class TrainLossColumn(Metric):
    """A recorder column for one part of the training loss (e.g. the GAN's `loss_D`), summed over an epoch's
    training batches by the callback that computes it: `reset_epoch()` before training, `add(value, n)` per batch
    (kept on the device: one host sync per epoch). The Recorder's own reset/accumulate (validation) leave it alone."""
    def __init__(self, name): self._name, self.total, self.count = name, None, 0
    def reset_epoch(self): self.total, self.count = None, 0
    def add(self, v, n=1):
        v = v.detach().float() * n
        self.total = v if self.total is None else self.total + v
        self.count += n
    def reset(self): pass
    def accumulate(self, learn): pass
    @property
    def value(self): return float(self.total / self.count) if self.count else None
    @property
    def name(self): return self._name


class _RGBMetric(Metric):
    "Average of a per-image score on decoded RGB over the validation set."
    def reset(self): self.total, self.count = 0., 0

    def _rgb(self, learn):
        L_ = learn.xb[0]
        return decode_lab(L_, learn.pred.detach()), decode_lab(L_, learn.yb[0])

    def accumulate(self, learn):
        pred, true = self._rgb(learn)
        s = self.score(pred, true)
        self.total += s.sum()
        self.count += len(s)

    @property
    def value(self): return float(self.total / self.count) if self.count else None


class PSNR(_RGBMetric):
    "Mean per-image PSNR (dB) of the colourised RGB against the truth."
    def score(self, pred, true): return psnr(pred, true)


class SSIM(_RGBMetric):
    "Mean per-image SSIM of the colourised RGB against the truth."
    def score(self, pred, true): return ssim(pred, true)


class Colourfulness(_RGBMetric):
    "Mean colourfulness of the colourised images (compare with the truth's: see `DeltaColourfulness`)."
    def score(self, pred, true): return colourfulness(pred)


class DeltaColourfulness(_RGBMetric):
    "|mean CF(pred) - mean CF(truth)| over the validation set: 0 when the output is as colourful as real photos."
    def reset(self): self.total, self.true_total, self.count = 0., 0., 0

    def accumulate(self, learn):
        pred, true = self._rgb(learn)
        self.total += colourfulness(pred).sum()
        self.true_total += colourfulness(true).sum()
        self.count += len(pred)

    @property
    def value(self): return float((self.total - self.true_total).abs() / self.count) if self.count else None

    @property
    def name(self): return 'delta_colourfulness'


def spurious_colour(pred_ab: Tensor, true_ab: Tensor, radius=7, chroma=12., true_chroma=6., hue_bins=12) -> Tensor:
    """Per-image share of *blotch* pixels -> (N,): output pixels with a visible colour (chroma sqrt(a²+b²) >= `chroma`,
    Lab units) whose hue occurs nowhere in the truth within `radius` pixels. Hue is binned into `hue_bins` sectors of
    the ab plane; a hue "occurs" near a pixel when some truth pixel in the (2 radius + 1)² window has at least
    `true_chroma` and a hue in the same or an adjacent sector (so a 30°-wide sector tolerates up to about ±45°).
    0 for the truth itself and for any grey output; a green patch on a red fish, or blue on a grey wall, counts.
    `pred_ab`, `true_ab`: (N, 2, H, W) in Lab units (not the network's /110 scale)."""
    def sectors(ab):
        hue = torch.atan2(ab[:, 1], ab[:, 0])                                   # (-pi, pi]
        return ((hue + torch.pi) / (2 * torch.pi) * hue_bins).long().clamp_(0, hue_bins - 1)
    pred_ab, true_ab = pred_ab.float(), true_ab.float()
    t_sec, p_sec = sectors(true_ab), sectors(pred_ab)
    present = F.one_hot(t_sec, hue_bins).permute(0, 3, 1, 2).float() * (true_ab.norm(dim=1) >= true_chroma)[:, None]
    present = F.max_pool2d(present, 2 * radius + 1, stride=1, padding=radius)           # hue k within the window
    present = torch.maximum(present, torch.maximum(present.roll(1, 1), present.roll(-1, 1)))   # or a neighbour sector
    found = present.gather(1, p_sec[:, None]).squeeze(1) > 0
    blotch = (pred_ab.norm(dim=1) >= chroma) & ~found
    return blotch.flatten(1).float().mean(1)


class SpuriousColour(_RGBMetric):
    "Mean share of output pixels coloured with a hue found nowhere nearby in the truth (`spurious_colour`): blotches."
    def accumulate(self, learn):
        s = spurious_colour(learn.pred.detach().float() * AB_SCALE, learn.yb[0].float() * AB_SCALE)
        self.total += s.sum()
        self.count += len(s)

    @property
    def name(self): return 'spurious_colour'


def colour_metrics(): return [PSNR(), SSIM(), Colourfulness(), DeltaColourfulness()]


def score_predictions(dl, predict, metrics=None) -> dict:
    """Run `predict(L, ab_true) -> ab` over a DataLoader of (L, ab) batches and return the mean L1 on ab and each
    metric's value, e.g. for the grey baseline (`lambda L, ab: ab * 0`) or the truth (`lambda L, ab: ab`)."""
    from types import SimpleNamespace
    metrics = colour_metrics() if metrics is None else metrics
    for m in metrics: m.reset()
    l1, n = 0., 0
    with torch.inference_mode():
        for L_, ab in dl:
            pred = predict(L_, ab)
            l1 += (pred - ab).abs().mean((1, 2, 3)).sum().item()
            n += len(ab)
            for m in metrics: m.accumulate(SimpleNamespace(xb=(L_,), yb=(ab,), pred=pred))
    return {'l1': l1 / n, **{m.name: m.value for m in metrics}}


def frame_ab(rgb) -> np.ndarray:
    "The ab of an 8-bit RGB frame (H, W, 3) as a (2, H, W) float32 array."
    from .lab import rgb_to_lab
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255
    return rgb_to_lab(x)[1:].numpy()


def flicker(frames, clip) -> list:
    """Temporal flicker of a colourised clip with known motion (`clips.Clip`): for each frame after the first, the
    mean change of ab (|Δab|, CIE ab units) from the previous frame, followed along the true motion, on the pixels
    that stay in view (Lai et al. 2018's warping error, on chroma). `frames`: the output frames (uint8 RGB) in order.
    The first frame, and the first frame of each new scene, give None."""
    import cv2
    out, prev = [], None
    for t, rgb in enumerate(frames):
        ab = frame_ab(rgb)
        if prev is None or t in clip.cuts: out.append(None)
        else:
            qx, qy, inview = clip.previous_position(t)
            warped = np.stack([cv2.remap(c, qx, qy, cv2.INTER_LINEAR) for c in prev])
            d = np.sqrt(((ab - warped) ** 2).sum(0))
            out.append(float(d[inview].mean()) if inview.any() else None)
        prev = ab
    return out
