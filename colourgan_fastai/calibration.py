"""Colourfulness calibration: one number, fitted after training on held-out images, that sets how much colour a
colourizer paints, the way temperature scaling sets a classifier's confidence.

A generator trained for fidelity (L1, PSNR) is timid: where it is unsure of a hue it predicts the mean, grey-ish ab.
`calibrate_colourfulness` finds the gain g for which g * ab (clamped to the output range) is, on average, exactly as
colourful as the real images, and stores it in the generator (`ColourUnet.chroma_gain`), so `learn.export`,
`colourize` and the metrics all see the calibrated model. Training never sees the gain (it acts in eval mode only).
Measured on CIFAR-10 (docs/experiments/cifar10.md, "A calibrated chroma gain"): near 1 the gain buys colour for less PSNR than the colourfulness loss
does.
"""
import torch
from fastprogress.fastprogress import progress_bar

from .lab import decode_lab
from .metrics import colourfulness
from .models import colour_unet_of, as_plain

__all__ = ['calibrate_colourfulness']


def _mean_cf(Ls, abs_, gain, lo, hi):
    return torch.cat([colourfulness(decode_lab(L, (ab * gain).clamp(lo, hi))) for L, ab in zip(Ls, abs_)]).mean().item()


def calibrate_colourfulness(learn, dl=None, gap=0., max_gain=4., tol=0.01, display=True) -> float:
    """Set the generator's `chroma_gain` so that on `dl` (batches of (L, ab); default `learn.dls.valid`) the
    colourised images' mean colourfulness equals the real images' minus `gap`; return the gain.
    Use images the model did not train on, and calibrate after the last `fit` (fitting more changes the colours
    the gain was fitted to). The generator's other eval-mode settings (`flip_average`) stay as they are and are
    part of what is calibrated. Raises ValueError when no gain in [1/max_gain, max_gain] reaches the target."""
    G = colour_unet_of(learn)
    dl = learn.dls.valid if dl is None else dl
    lo, hi = getattr(G, 'ab_range', (-1., 1.))
    was_training, old_gain = G.training, float(G.chroma_gain)
    G.set_prediction(chroma_gain=1.)                      # predictions without a gain, to be scaled below
    Ls, preds, true_cf = [], [], []
    try:
        G.eval()
        with torch.inference_mode():
            for L_, ab in progress_bar(dl, display=display, leave=False):
                L_, ab = as_plain(L_), as_plain(ab)
                Ls.append(L_.float().cpu()); preds.append(G(L_).float().cpu())
                true_cf.append(colourfulness(decode_lab(L_, ab)).cpu())
        if not Ls: raise ValueError("calibrate_colourfulness needs at least one batch of images")
        target = torch.cat(true_cf).mean().item() - gap
        a, b = 1. / max_gain, float(max_gain)
        cf_a, cf_b = _mean_cf(Ls, preds, a, lo, hi), _mean_cf(Ls, preds, b, lo, hi)
        if not cf_a <= target <= cf_b:
            raise ValueError(f"no chroma gain in [{a:.3g}, {b:.3g}] makes the outputs' colourfulness {target:.2f} "
                             f"(they reach {cf_a:.2f} to {cf_b:.2f}); the model was left as it was")
    except BaseException:
        G.set_prediction(chroma_gain=old_gain); raise
    finally: G.train(was_training)
    for _ in range(60):                                   # bisection: colourfulness grows with the gain
        g = (a + b) / 2
        cf = _mean_cf(Ls, preds, g, lo, hi)
        if abs(cf - target) <= tol: break
        if cf < target: a = g
        else: b = g
    G.set_prediction(chroma_gain=g)
    return g
