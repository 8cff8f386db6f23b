"""Colour hints: user-guided colourisation (Zhang et al. 2017, "Real-Time User-Guided Image Colorization with
Learned Deep Priors").

A hinted U-Net (`colour_learner(dls, arch, hints=True)`) sees L, the hints' ab and their mask. The mask, not the
colour, says where a hint is, so a grey hint (ab = 0, mask 1) is a real hint; no hints is an all-zero mask.
- Training: `HintSampler` (a Callback the hinted learner carries) samples hints from the true ab of every training
  batch, as the paper does: a geometric number of points per image (p = 1/8: about one image in eight gets none),
  square patches of 1 to 9 px placed around the centre, each hint the patch's mean ab. Validation batches get none.
- Validation: `WithHints(metric)` scores the same metric with a fixed, seeded set of hints (its own column).
- Prediction: `hint_maps` turns a person's points, (x, y, colour) in the photo's own pixels, into the hint maps at
  the render size; the colour ('#rrggbb' or RGB) becomes ab at the photo's own lightness there.
"""
import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from PIL import ImageColor
from fastai.callback.core import Callback
from fastai.learner import Metric

from .lab import rgb_to_lab, fit_lab_in_gamut, AB_SCALE

__all__ = ['sample_hints', 'HintSampler', 'WithHints', 'HintedPass', 'parse_colour', 'hint_maps', 'check_points',
           'read_hints_file', 'USER_PATCH']

USER_PATCH = 3          # a person's point becomes a USER_PATCH x USER_PATCH hint at the render size


def _counts(N, n, p, max_points, g):
    if n is not None: return torch.full((N,), int(n), dtype=torch.long)
    u = torch.rand(N, generator=g).clamp_min(1e-12)                    # geometric: P(k) = (1-p)^k p, k >= 0
    return (torch.log(u) / math.log(1 - p)).floor().long().clamp_max(max_points)


def sample_hints(ab, n=None, p=1 / 8, max_patch=9, max_points=64, generator=None):
    """Hints sampled from the true `ab` (N, 2, H, W) -> (hint_ab (N, 2, H, W), mask (N, 1, H, W)), on ab's device.
    `n`: points per image (None: geometric with parameter `p`, at most `max_points`); each a square patch of 1 to
    `max_patch` px whose position is drawn from a normal around the centre (sd a quarter of the free range), its
    hint the patch's mean ab (later points overwrite earlier ones where they overlap). `generator`: a seeded
    `torch.Generator` (CPU) makes the hints repeatable."""
    N, _, H, W = ab.shape
    g = generator
    counts = _counts(N, n, p, max_points, g)
    img = torch.repeat_interleave(torch.arange(N), counts)
    K = len(img)
    hint = ab.new_zeros(N, H, W, 2)
    mask = ab.new_zeros(N, H, W)
    if K:
        P = torch.randint(1, max_patch + 1, (K,), generator=g).clamp_max(min(H, W))
        def place(side):
            free = (side - P + 1).float()
            return (torch.randn(K, generator=g) * free / 4 + free / 2).floor().long().clamp(min=0).minimum(side - P)
        y, x = place(H), place(W)
        S = F.pad(ab.float().cumsum(2).cumsum(3), (1, 0, 1, 0))                  # integral image, (N, 2, H+1, W+1)
        i, y, x, P = (t.to(ab.device) for t in (img, y, x, P))
        s = S[i, :, y + P, x + P] - S[i, :, y, x + P] - S[i, :, y + P, x] + S[i, :, y, x]
        mean = (s / (P * P)[:, None]).to(ab.dtype)                               # (K, 2)
        for side in P.unique().tolist():
            sel = (P == side).nonzero()[:, 0]
            d = torch.arange(side, device=ab.device)
            Y = (y[sel, None, None] + d[None, :, None]).expand(-1, side, side)
            X = (x[sel, None, None] + d[None, None, :]).expand(-1, side, side)
            I = i[sel, None, None].expand(-1, side, side)
            hint[I, Y, X] = mean[sel, None, None, :].expand(-1, side, side, 2)
            mask[I, Y, X] = 1
    return hint.permute(0, 3, 1, 2).contiguous(), mask[:, None]


class HintSampler(Callback):
    """Give every training batch hints sampled from its true ab (`sample_hints`): `xb` becomes (L, hint_ab, mask).
    Validation and prediction batches keep plain L (no hints), so the validation loss and metrics are those of the
    automatic colouriser; `WithHints` adds hinted columns. A batch that already carries hints is left as it is."""
    order = -5                                           # before the GAN and the loss terms read the batch

    def __init__(self, p=1 / 8, max_patch=9, max_points=64):
        self.p, self.max_patch, self.max_points = p, max_patch, max_points

    def before_batch(self):
        if not self.training or len(self.xb) != 1 or not self.yb: return
        self.learn.xb = (self.xb[0], *sample_hints(self.yb[0], None, self.p, self.max_patch, self.max_points))


class HintedPass:
    """The predictions with `n` hints per image sampled from the truth, seeded per validation batch (so every epoch
    and every model sees the same hints), made once per batch however many `WithHints` columns read them."""
    def __init__(self, n=10, seed=0): self.n, self.seed, self._last = n, seed, None
    def __getstate__(self): return {**self.__dict__, '_last': None}      # an exported Learner keeps no batch
    def reset(self): self._last = None

    def __call__(self, learn):
        L_, ab = learn.xb[0], learn.yb[0]
        if self._last is not None and self._last[0] is L_ and self._last[1] == learn.iter: return self._last[2]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + learn.iter)
        hint, mask = sample_hints(ab, self.n, generator=g)
        with torch.no_grad(): pred = learn.model(L_, hint, mask)
        self._last = (L_, learn.iter, pred)
        return pred


class WithHints(Metric):
    """`metric` scored on predictions given `n` hints per image sampled from the truth, seeded per validation batch,
    so every epoch (and every model) is scored on the same hints: a column of its own, e.g. `psnr_10hints`.
    Columns built with one `HintedPass` (`shared`) share its one hinted prediction per batch."""
    def __init__(self, metric, n=10, seed=0, shared=None):
        self.metric, self.hinted = metric, shared or HintedPass(n, seed)
        self.n, self.seed = self.hinted.n, self.hinted.seed
    def reset(self): self.metric.reset(); self.hinted.reset()

    def accumulate(self, learn):
        pred = self.hinted(learn)
        self.metric.accumulate(SimpleNamespace(xb=(learn.xb[0],), yb=(learn.yb[0],), pred=pred))

    @property
    def value(self): return self.metric.value
    @property
    def name(self): return f'{self.metric.name}_{self.n}hints'


# ---------------------------------------------------------------------------------------------- a person's points
def parse_colour(c):
    """'#rrggbb', '#rgb', a CSS colour name ('red') or (r, g, b) in 0-255 -> a (3,) float tensor in [0, 1]; anything
    else: a clear ValueError."""
    if isinstance(c, str):
        try: rgb = ImageColor.getrgb(c.strip())[:3]
        except ValueError: raise ValueError(f"colour {c!r} is not '#rrggbb' or a colour name") from None
        return torch.tensor(rgb, dtype=torch.float32) / 255
    try: rgb = [float(v) for v in c]
    except (TypeError, ValueError): rgb = []
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ValueError(f"colour {c!r} is neither '#rrggbb' nor (r, g, b) with each in 0-255")
    return torch.tensor(rgb) / 255


def check_points(points, size, name=None):
    """Check a list of (x, y, colour) hints for a photo of `size` (w, h) -> [(x, y, rgb tensor)]; a point outside
    the photo or a bad colour raises a ValueError naming the photo and the point."""
    w, h = size
    where = f" of {name}" if name else ""
    out = []
    for k, pt in enumerate(points or []):
        try: x, y, c = pt
        except (TypeError, ValueError):
            raise ValueError(f"hint {k}{where}: {pt!r} is not (x, y, colour)") from None
        try: x, y = float(x), float(y)
        except (TypeError, ValueError): raise ValueError(f"hint {k}{where}: x and y must be numbers, got {pt!r}") from None
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"hint {k}{where} at ({x:g}, {y:g}) is outside the {w}x{h} photo")
        try: rgb = parse_colour(c)
        except ValueError as e: raise ValueError(f"hint {k}{where} at ({x:g}, {y:g}): {e}") from None
        out.append((x, y, rgb))
    return out


def hint_maps(points, L_render, size, patch=USER_PATCH):
    """A person's hints -> (hint_ab (2, h, w), mask (1, h, w)) in the network's units, for a photo of `size` (w, h)
    rendered as `L_render` (h, w, L* in [0, 100]). Each point becomes a `patch` x `patch` square at the render size;
    its colour's ab is fitted into the gamut at the photo's own lightness there (mean L* of the square), so a bright
    colour clicked on a dark coat gives that coat's dark version of it. Later points win where squares overlap."""
    h, w = L_render.shape
    W, H = size
    hint, mask = torch.zeros(2, h, w), torch.zeros(1, h, w)
    for x, y, rgb in check_points(points, size):
        cx, cy = min(w - 1, int((x + 0.5) * w / W)), min(h - 1, int((y + 0.5) * h / H))
        r0, c0 = max(0, cy - patch // 2), max(0, cx - patch // 2)
        r1, c1 = min(h, r0 + patch), min(w, c0 + patch)
        ab = rgb_to_lab(rgb[:, None, None])[1:]
        lab = torch.cat([L_render[r0:r1, c0:c1].float().mean().reshape(1, 1, 1), ab])
        hint[:, r0:r1, c0:c1] = fit_lab_in_gamut(lab)[1:] / AB_SCALE
        mask[:, r0:r1, c0:c1] = 1
    return hint, mask


def read_hints_file(path):
    """Read a hints file: JSON mapping an image's path (as given, or relative to the file's folder, or its bare file
    name) to a list of points, each [x, y, colour] or {"x": .., "y": .., "colour": ..}, colour '#rrggbb' or
    [r, g, b] in 0-255, x and y in the photo's own pixels (0, 0 = top left). Returns {key: [(x, y, colour)]}; bad
    JSON or a badly formed entry raises a ValueError naming the file."""
    path = Path(path)
    try: data = json.loads(path.read_text())
    except FileNotFoundError: raise FileNotFoundError(f"hints file {path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e: raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object mapping image paths to lists of points, got {type(data).__name__}")
    out = {}
    for key, pts in data.items():
        if not isinstance(pts, list): raise ValueError(f"{path}: the hints of {key!r} must be a list of points")
        rows = []
        for k, pt in enumerate(pts):
            if isinstance(pt, dict):
                try: pt = (pt['x'], pt['y'], pt.get('colour', pt.get('color')))
                except KeyError: raise ValueError(f"{path}: hint {k} of {key!r} needs x, y and colour") from None
            if not isinstance(pt, (list, tuple)) or len(pt) != 3 or pt[2] is None:
                raise ValueError(f"{path}: hint {k} of {key!r} must be [x, y, colour], got {pt!r}")
            rows.append(tuple(pt))
        out[key] = rows
    return out
