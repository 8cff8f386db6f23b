"""Colourise pictures of any size (the folder job is folders.py, ONNX export onnx.py).

DeOldify's insight: predict chroma at a low *render* size, upsample it, and put it on the original
full-resolution L, so edges stay as sharp as the input. The render is reflect-padded by a border that is cropped
off the prediction again, so the network's own edge effects (zero padding makes a U-Net tint the outermost pixels)
fall outside the photo. Out-of-gamut colours are fixed by shrinking chroma,
never by clipping RGB, so the output's lightness is the input's. Full-resolution work is done in strips of
rows, so memory stays bounded for very large images.
"""
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from fastai.torch_core import get_model

from .images import image_array, array_scale, to_unit_float, n_frames
from .lab import lightness, lightness_u8, lab_to_rgb, lab_to_srgb8, L_SCALE, L_SHIFT, AB_SCALE
from .models import check_colourizer, as_plain
from .hints import hint_maps, check_points

__all__ = ['colourize', 'colourize_many', 'load_colourizer', 'GreyImage']

STRIP_PIXELS = 2 ** 19          # full-resolution work in strips of about half a million pixels: bounded memory, and
                                # intermediates small enough to stay in cache (whole 12 MP arrays: 1.2-2.5x slower)


class GreyImage:
    "An input reduced to what colourisation needs: full-resolution L* (float32, H x W) and the alpha channel."
    def __init__(self, L, alpha=None, name=None): self.L, self.alpha, self.name = L, alpha, name

    @property
    def size(self): return self.L.shape[1], self.L.shape[0]

    @classmethod
    def create(cls, src):
        """path | PIL image | numpy array, read by the one image rule of `images.py` (the training loader's rule):
        RGB input is turned grey first, alpha is kept. A multi-frame file (animated GIF, multi-page TIFF) is
        refused here, never cut to its first frame: `colourize_folder` and the CLI colourise every frame."""
        name = str(src) if isinstance(src, (str, Path)) else None
        if not isinstance(src, np.ndarray) and (k := n_frames(src)) > 1:
            raise ValueError(f"{name or 'the image'} has {k} frames: colourize() returns one picture; use "
                             f"colourize_folder or `colourgan colourize`, which colourise every frame")
        arr = image_array(src)
        scale = array_scale(arr)
        alpha = None
        if arr.shape[-1] in (2, 4):
            alpha = (to_unit_float(arr[..., -1], scale) * 255 + 0.5).astype(np.uint8)
            arr = arr[..., :-1]
        H, W = arr.shape[:2]
        L = np.empty((H, W), np.float32)
        if arr.dtype == np.uint8 and arr.shape[-1] in (1, 3):        # 8-bit: table lookups (lab.lightness_u8)
            for r0, r1 in _strips(H, W): L[r0:r1] = lightness_u8(arr[r0:r1, :, 0] if arr.shape[-1] == 1 else arr[r0:r1])
            return cls(L, alpha, name)
        for r0, r1 in _strips(H, W):
            x = torch.from_numpy(to_unit_float(arr[r0:r1], scale)).permute(2, 0, 1)
            if x.shape[0] == 1: x = x.expand(3, -1, -1)
            L[r0:r1] = lightness(x)[0].numpy()
        return cls(L, alpha, name)

    def grey_rgb(self) -> np.ndarray:
        "The input as the model sees it: its L with no chroma, as (H, W, 3) uint8 RGB."
        L_ = torch.from_numpy(self.L)[None]
        lab = torch.cat([L_, torch.zeros_like(L_), torch.zeros_like(L_)])
        return (lab_to_rgb(lab).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def _strips(H, W):
    step = max(1, STRIP_PIXELS // max(W, 1))
    return [(r, min(H, r + step)) for r in range(0, H, step)]


def load_colourizer(model, cpu=True):
    "A Learner from what `learn.export` wrote (path), checked to be a colourizer (L -> ab)."
    from fastai.learner import Learner, load_learner
    if isinstance(model, Learner): return model
    p = Path(model)
    if not p.is_file(): raise FileNotFoundError(f"model file {p} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            learn = load_learner(p, cpu=cpu)
    except Exception as e:
        raise ValueError(f"{p} is not a model written by learn.export: {type(e).__name__}: {e}") from e
    G = get_model(learn.model)
    check_colourizer(G, getattr(G, 'img_size', (32, 32)))
    return learn



def _render_shape(w, h, render_size, max_pixels=None, multiple=8):
    """Short side = render_size, aspect kept, both sides a multiple of 8 (at least 8); at most `max_pixels`
    (default 16 * render_size^2), so a 3 x 5000 px strip renders small instead of at 64 x 106,664."""
    max_pixels = max_pixels or 16 * render_size ** 2
    s = render_size / min(w, h)
    if w * h * s * s > max_pixels: s = (max_pixels / (w * h)) ** 0.5
    r = lambda v: max(multiple, int(round(v * s / multiple)) * multiple)
    H, W = r(h), r(w)
    if H * W > max_pixels:                        # the minimum of 8 on the short side: give the long side less
        if H >= W: H = max(multiple, max_pixels // W // multiple * multiple)
        else: W = max(multiple, max_pixels // H // multiple * multiple)
    return H, W


def _default_render_size(G):
    size = getattr(G, 'img_size', None)
    if size is None: raise ValueError("this model does not record its training size: pass render_size")
    return min(size)


def _border(h, w, size=None):
    """The reflect padding around a render of h x w for a model trained at `size` (h, w): none at the training size
    itself, where the network sees exactly the framing it was trained on (padding there moves its predictions away
    from what it was scored on); elsewhere `_reflect_border`."""
    if size is not None and (h, w) == tuple(size): return 0
    return _reflect_border(h, w)


def _reflect_border(h, w):
    """Reflect padding around a render of h x w: a multiple of 8 near an eighth of the short side (16 px at 96,
    8 at 32), none where the render is too small to reflect (a side of 8 px or less)."""
    p = 8 * -(-min(h, w) // 64)
    return p if p < min(h, w) else 0


def _bilinear_taps(n_out, n_in):
    "Source indices and weights of a bilinear resize from n_in to n_out samples (align_corners=False, edges clamped)."
    t = ((torch.arange(n_out, dtype=torch.float32) + 0.5) * (n_in / n_out) - 0.5).clamp_(0, n_in - 1)
    i0 = t.floor().long()
    return i0, (i0 + 1).clamp_(max=n_in - 1), t - i0


class _ChromaRows:
    """ab (2, h, w) resized bilinearly to (2, H, W) as F.interpolate(align_corners=False) would give, strip by strip
    of rows: the columns are resized once (h rows are few), then each strip mixes two of those rows per output row."""
    def __init__(self, ab, H, W):
        x0, x1, wx = _bilinear_taps(W, ab.shape[-1])
        left = ab[..., x0]
        self.cols = left.add_((ab[..., x1] - left).mul_(wx))                             # (2, h, W)
        self.y0, self.y1, self.wy = _bilinear_taps(H, ab.shape[-2])

    def rows(self, r0, r1):
        top = self.cols[:, self.y0[r0:r1]]
        return top.add_((self.cols[:, self.y1[r0:r1]] - top).mul_(self.wy[r0:r1, None]))


def _compose(grey: GreyImage, ab_small: torch.Tensor) -> Image.Image:
    """Full-resolution L + upsampled ab -> 8-bit RGB(A), chroma shrunk where out of gamut (`lab.lab_to_srgb8`: float32
    in place, tables for the curves; within one unit of the float64 maths). Strips of rows bound the memory."""
    H, W = grey.L.shape
    planes = np.empty((3, H, W), np.uint8)
    L_ = torch.from_numpy(grey.L)
    chroma = _ChromaRows(as_plain(ab_small).float() * AB_SCALE, H, W)
    for r0, r1 in _strips(H, W):
        ab = chroma.rows(r0, r1)
        planes[:, r0:r1] = lab_to_srgb8(L_[r0:r1], ab).numpy()
    bands = [Image.fromarray(p) for p in planes]
    if grey.alpha is not None: return Image.merge('RGBA', bands + [Image.fromarray(grey.alpha)])
    return Image.merge('RGB', bands)


def render_L(grey, h, w):
    "The image's L* resized to (h, w) (bilinear, PIL's antialiased filter), kept on it for the next caller."
    cached = getattr(grey, '_render', None)
    if cached is None or cached[0] != (h, w):
        grey._render = cached = ((h, w), np.array(Image.fromarray(grey.L, 'F').resize((w, h), Image.BILINEAR)))
    return cached[1]


def _predict(G, greys, render_size, bs, max_pixels=None, hints=None):
    """ab at render size for each image, batching images whose render shapes agree. `hints`: a list of each image's
    points (x, y, colour) or None, for a U-Net that takes hints (`hint_maps` puts them at the render size)."""
    device = next(G.parameters()).device
    shapes = [_render_shape(*g.size, render_size, max_pixels) for g in greys]
    out = [None] * len(greys)
    by_shape = {}
    for i, s in enumerate(shapes): by_shape.setdefault(s, []).append(i)
    hinted = hints is not None and any(hints)
    was_training = G.training
    G.eval()
    try:
        with torch.inference_mode():
            for (h, w), idx in by_shape.items():
                for k in range(0, len(idx), bs):
                    chunk = idx[k:k + bs]
                    x = torch.stack([torch.from_numpy(render_L(greys[i], h, w)) for i in chunk])
                    maps = [hint_maps(hints[i] or [], x[j], greys[i].size) for j, i in enumerate(chunk)] if hinted else []
                    x = (x[:, None] / L_SCALE - L_SHIFT).to(device)
                    extra = [torch.stack([m[c] for m in maps]).to(device) for c in (0, 1)] if maps else []
                    p = _border(h, w, getattr(G, 'img_size', None))
                    if p:
                        x = F.pad(x, (p, p, p, p), mode='reflect')
                        extra = [F.pad(t, (p, p, p, p)) for t in extra]       # no hints in the border
                    ab = G(x, *extra).float().cpu()[..., p:p + h, p:p + w]
                    for j, i in enumerate(chunk): out[i] = ab[j]
    finally: G.train(was_training)
    return out


def check_positive(name, v, least=1):
    if v is not None and (not isinstance(v, int) or v < least):
        raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")


def require_hints(G):
    "Raise a clear ValueError unless the generator `G` takes colour hints."
    if not getattr(G, 'takes_hints', False):
        raise ValueError("this colouriser was trained without hints: colourise without them, or train one that takes "
                         "them (`colourgan train --hints`, colour_learner(..., hints=True))")


def _check_hints(G, greys, hints):
    if hints is None: return None
    if len(hints) != len(greys): raise ValueError(f"{len(hints)} hint lists for {len(greys)} images")
    if any(hints): require_hints(G)
    for g, pts in zip(greys, hints): check_points(pts, g.size, g.name)        # every point checked before any work
    return hints


def colourize_many(learn, imgs, render_size=None, bs=16, max_pixels=None, hints=None):
    """Colourise a list of images (paths, PIL images or arrays) in batches -> list of PIL images of the input sizes.
    `max_pixels`: the most pixels chroma is predicted on per image (default 16 * render_size^2). `hints`: for a
    colouriser that takes them, one list of (x, y, colour) points per image (see `colourize`)."""
    check_positive('bs', bs); check_positive('render_size', render_size, 8)
    learn = load_colourizer(learn)
    G = get_model(learn.model)
    render_size = render_size or _default_render_size(G)
    greys = [g if isinstance(g, GreyImage) else GreyImage.create(g) for g in imgs]
    hints = _check_hints(G, greys, hints)
    return [_compose(g, ab) for g, ab in zip(greys, _predict(G, greys, render_size, bs, max_pixels, hints))]


def colourize(learn, img, render_size=None, max_pixels=None, hints=None) -> Image.Image:
    """Colourise one image of any size -> PIL image of the input's size (RGBA when the input has alpha).
    ab is predicted at `render_size` (short side; default: the size the model was trained at; at most
    `max_pixels`) and put on the input's full-resolution L. `learn`: a Learner or the path of a file written by
    `learn.export`. Arrays follow the one image rule of `images.py`; a multi-frame file is refused (see
    `colourize_folder`). `hints`: for a colouriser trained with hints, [(x, y, colour), ...] with x, y in the
    image's own pixels (0, 0 at the top left) and colour '#rrggbb' or (r, g, b) in 0-255: "this thing is this
    colour"; the colour is taken at the photo's own lightness there (hints.py)."""
    return colourize_many(learn, [img], render_size, bs=1, max_pixels=max_pixels,
                          hints=None if hints is None else [hints])[0]
