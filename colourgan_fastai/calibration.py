"""Colourfulness calibration: one number, fitted after training on held-out images, that sets how much colour a
colourizer paints, the way temperature scaling sets a classifier's confidence.

A generator trained for fidelity (L1, PSNR) is timid: where it is unsure of a hue it predicts the mean, grey-ish ab.
`calibrate_colourfulness` finds the gain g for which g * ab (clamped to the output range) is, on average, exactly as
colourful as the real images, and stores it in the generator (`ColourUnet.chroma_gain`), so `learn.export`,
`colourize` and the metrics all see the calibrated model. Training never sees the gain (it acts in eval mode only).
Measured on CIFAR-10 (docs/experiments/cifar10.md, "A calibrated chroma gain"): near 1 the gain buys colour for less PSNR than the colourfulness loss
does.
"""
import numpy as np
import torch
from fastprogress.fastprogress import progress_bar

from .lab import decode_lab
from .metrics import colourfulness
from .models import colour_unet_of, as_plain

__all__ = ['calibrate_colourfulness']


def _mean_cf(Ls, abs_, gain, lo, hi):
    return torch.cat([colourfulness(decode_lab(L, (ab * gain).clamp(lo, hi))) for L, ab in zip(Ls, abs_)]).mean().item()


def _image_cf(im) -> float:
    "The colourfulness of an 8-bit PIL image."
    rgb = torch.from_numpy(np.asarray(im.convert('RGB'), np.float32) / 255)
    return colourfulness(rgb.permute(2, 0, 1)[None]).item()


def _photos_cf(greys, abs_, gain, lo, hi):
    "Mean colourfulness of the photos as `colourize` composes them (full-resolution L, upsampled ab, 8-bit sRGB)."
    from .inference import _compose
    return float(np.mean([_image_cf(_compose(g, (ab * gain).clamp(lo, hi))) for g, ab in zip(greys, abs_)]))


PHOTO_SIDE = 8      # whole-photo calibration reduces a photo to at most this many times the render size first


def _photo_predictions(G, photos, render_size, bs, display):
    """Each photo's grey form, its true colourfulness and the ab `colourize` predicts for it (the gain set to 1).
    The truth is measured at full size; a photo whose short side is over PHOTO_SIDE render sizes is then reduced to
    that for the prediction and the bisection (the predicted chroma is smooth, so its colourfulness hardly depends on
    the size, while a folder of 12 MP photos would otherwise be held in memory at full size)."""
    from PIL import Image
    from .images import load_rgb
    from .inference import GreyImage, _predict, _default_render_size
    render_size = render_size or _default_render_size(G)
    greys, abs_, true_cf = [], [], []
    for k in progress_bar(range(0, len(photos), bs), display=display, leave=False):
        rgbs = [load_rgb(p) for p in photos[k:k + bs]]
        for i, im in enumerate(rgbs):
            true_cf.append(_image_cf(im))
            scale = PHOTO_SIDE * render_size / min(im.size)                   # the truth at full size, above
            if scale < 1: rgbs[i] = im.resize([max(1, round(v * scale)) for v in im.size], Image.BILINEAR)
        gs = [GreyImage.create(im) for im in rgbs]
        greys += gs; abs_ += _predict(G, gs, render_size, bs)
    return greys, abs_, float(np.mean(true_cf))


def calibrate_colourfulness(learn, dl=None, gap=0., max_gain=4., tol=0.01, display=True, photos=None,
                            render_size=None, bs=16) -> float:
    """Set the generator's `chroma_gain` so that on `dl` (batches of (L, ab); default `learn.dls.valid`) the
    colourised images' mean colourfulness equals the real images' minus `gap`; return the gain.
    `photos` (image files or PIL images) instead of `dl`: each photo whole, at its own size, colourised as `colourize`
    does it (ab predicted at `render_size`, default the training size, put on the full-resolution L; a photo over
    eight render sizes on its short side is reduced to that for the prediction): the amount of colour a user sees,
    which for photos larger than the training size differs from the crops' by a model-dependent amount
    (docs/experiments/hints.md).
    Use images the model did not train on, and calibrate after the last `fit` (fitting more changes the colours
    the gain was fitted to). The generator's other eval-mode settings (`flip_average`) stay as they are and are
    part of what is calibrated. Raises ValueError when no gain in [1/max_gain, max_gain] reaches the target."""
    G = colour_unet_of(learn)
    dl = learn.dls.valid if dl is None and photos is None else dl
    lo, hi = getattr(G, 'ab_range', (-1., 1.))
    was_training, old_gain = G.training, float(G.chroma_gain)
    G.set_prediction(chroma_gain=1.)                      # predictions without a gain, to be scaled below
    try:
        G.eval()
        if photos is not None:
            photos = list(photos)
            if not photos: raise ValueError("calibrate_colourfulness needs at least one photo")
            greys, preds, truth = _photo_predictions(G, photos, render_size, bs, display)
            mean_cf = lambda g: _photos_cf(greys, preds, g, lo, hi)
        else:
            Ls, preds, true_cf = [], [], []
            with torch.inference_mode():
                for L_, ab in progress_bar(dl, display=display, leave=False):
                    L_, ab = as_plain(L_), as_plain(ab)
                    Ls.append(L_.float().cpu()); preds.append(G(L_).float().cpu())
                    true_cf.append(colourfulness(decode_lab(L_, ab)).cpu())
            if not Ls: raise ValueError("calibrate_colourfulness needs at least one batch of images")
            truth = torch.cat(true_cf).mean().item()
            mean_cf = lambda g: _mean_cf(Ls, preds, g, lo, hi)
        target = truth - gap
        a, b = 1. / max_gain, float(max_gain)
        cf_a, cf_b = mean_cf(a), mean_cf(b)
        if not cf_a <= target <= cf_b:
            raise ValueError(f"no chroma gain in [{a:.3g}, {b:.3g}] makes the outputs' colourfulness {target:.2f} "
                             f"(they reach {cf_a:.2f} to {cf_b:.2f}); the model was left as it was")
    except BaseException:
        G.set_prediction(chroma_gain=old_gain); raise
    finally: G.train(was_training)
    for _ in range(60):                                   # bisection: colourfulness grows with the gain
        g = (a + b) / 2
        cf = mean_cf(g)
        if abs(cf - target) <= tol: break
        if cf < target: a = g
        else: b = g
    G.set_prediction(chroma_gain=g)
    return float(G.chroma_gain)                           # the gain as stored (float32), not the bisection's float64
