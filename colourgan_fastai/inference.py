"""Colourise real photos of any size, one file or a whole folder.

DeOldify's insight: predict chroma at a low *render* size, upsample it, and put it on the original
full-resolution L, so edges stay as sharp as the input. Out-of-gamut colours are fixed by shrinking chroma,
never by clipping RGB, so the output's lightness is the input's. Full-resolution work is done in strips of
rows, so memory stays bounded for very large images.
"""
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from fastai.torch_core import get_model
from fastprogress.fastprogress import progress_bar

from .data import image_array, find_images
from .lab import rgb_to_lab, lab_to_rgb, fit_lab_in_gamut, L_SCALE, L_SHIFT, AB_SCALE
from .models import check_colouriser

__all__ = ['colourize', 'colourize_folder', 'colourize_many', 'load_colouriser', 'export_onnx', 'GreyImage']

STRIP_PIXELS = 2 ** 21          # full-resolution work in strips of about 2 M pixels


class GreyImage:
    "An input reduced to what colourisation needs: full-resolution L* (float32, H x W) and the alpha channel."
    def __init__(self, L, alpha=None, name=None): self.L, self.alpha, self.name = L, alpha, name

    @property
    def size(self): return self.L.shape[1], self.L.shape[0]

    @classmethod
    def create(cls, src):
        "path | PIL image | numpy array (grey, RGB, RGBA, palette, 16-bit): RGB input is first turned grey."
        name = str(src) if isinstance(src, (str, Path)) else None
        arr = image_array(src)
        if arr.ndim == 2: arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4) or min(arr.shape[:2]) < 1:
            raise ValueError(f"not an image array: shape {arr.shape}")
        scale = 65535. if arr.dtype == np.uint16 else 255. if arr.dtype == np.uint8 else 1.
        alpha = None
        if arr.shape[-1] in (2, 4):
            alpha = np.clip(arr[..., -1].astype(np.float32) / scale * 255 + 0.5, 0, 255).astype(np.uint8)
            arr = arr[..., :-1]
        H, W = arr.shape[:2]
        L = np.empty((H, W), np.float32)
        for r0, r1 in _strips(H, W):
            x = torch.from_numpy(np.ascontiguousarray(arr[r0:r1])).float().div_(scale).clamp_(0, 1)
            x = x.permute(2, 0, 1)
            if x.shape[0] == 1: x = x.expand(3, -1, -1)
            L[r0:r1] = rgb_to_lab(x)[0].numpy()
        return cls(L, alpha, name)


def _strips(H, W):
    step = max(1, STRIP_PIXELS // max(W, 1))
    return [(r, min(H, r + step)) for r in range(0, H, step)]


def load_colouriser(model, cpu=True):
    "A Learner from what `learn.export` wrote (path), checked to be a colouriser (L -> ab)."
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
    check_colouriser(G, getattr(G, 'img_size', (32, 32)))
    return learn


def _render_shape(w, h, render_size, multiple=8):
    "Short side = render_size, aspect kept, both sides rounded to a multiple of 8."
    s = render_size / min(w, h)
    r = lambda v: max(multiple, int(round(v * s / multiple)) * multiple)
    return r(h), r(w)


def _default_render_size(G):
    size = getattr(G, 'img_size', None)
    if size is None: raise ValueError("this model does not record its training size: pass render_size")
    return min(size)


def _upsample_ab(ab, H, W, r0, r1):
    "Rows r0:r1 of `ab` (2, h, w) bilinearly resized to (H, W), as F.interpolate(align_corners=False) would give."
    ys = (torch.arange(r0, r1, dtype=torch.float32) + 0.5) / H * 2 - 1
    xs = (torch.arange(W, dtype=torch.float32) + 0.5) / W * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing='xy'), -1)[None]          # (1, r1-r0, W, 2)
    return F.grid_sample(ab[None].float(), grid, mode='bilinear', padding_mode='border', align_corners=False)[0]


def _compose(grey: GreyImage, ab_small: torch.Tensor) -> Image.Image:
    "Full-resolution L + upsampled ab -> 8-bit RGB(A), chroma shrunk where out of gamut."
    H, W = grey.L.shape
    out = np.empty((H, W, 3), np.uint8)
    for r0, r1 in _strips(H, W):
        ab = _upsample_ab(ab_small, H, W, r0, r1) * AB_SCALE
        lab = torch.cat([torch.from_numpy(grey.L[r0:r1])[None], ab], 0)
        rgb = lab_to_rgb(fit_lab_in_gamut(lab))
        out[r0:r1] = (rgb.permute(1, 2, 0) * 255 + 0.5).clamp_(0, 255).to(torch.uint8).numpy()
    if grey.alpha is not None: return Image.fromarray(np.dstack([out, grey.alpha]), 'RGBA')
    return Image.fromarray(out, 'RGB')


def _predict(G, greys, render_size, bs):
    "ab at render size for each image, batching images whose render shapes agree."
    device = next(G.parameters()).device
    shapes = [_render_shape(*g.size, render_size) for g in greys]
    out = [None] * len(greys)
    by_shape = {}
    for i, s in enumerate(shapes): by_shape.setdefault(s, []).append(i)
    was_training = G.training
    G.eval()
    try:
        with torch.inference_mode():
            for (h, w), idx in by_shape.items():
                for k in range(0, len(idx), bs):
                    chunk = idx[k:k + bs]
                    x = torch.stack([torch.from_numpy(np.asarray(
                        Image.fromarray(greys[i].L, 'F').resize((w, h), Image.BILINEAR))) for i in chunk])
                    x = (x[:, None] / L_SCALE - L_SHIFT).to(device)
                    ab = G(x).float().cpu()
                    for j, i in enumerate(chunk): out[i] = ab[j]
    finally: G.train(was_training)
    return out


def colourize_many(learn, imgs, render_size=None, bs=16):
    "Colourise a list of images (paths, PIL images or arrays) in batches -> list of PIL images of the input sizes."
    learn = load_colouriser(learn)
    G = get_model(learn.model)
    render_size = render_size or _default_render_size(G)
    if render_size < 8: raise ValueError(f"render_size must be at least 8, got {render_size}")
    greys = [g if isinstance(g, GreyImage) else GreyImage.create(g) for g in imgs]
    return [_compose(g, ab) for g, ab in zip(greys, _predict(G, greys, render_size, bs))]


def colourize(learn, img, render_size=None) -> Image.Image:
    """Colourise one image of any size -> PIL image of the input's size (RGBA when the input has alpha).
    ab is predicted at `render_size` (short side; default: the size the model was trained at) and put on the
    input's full-resolution L. `learn`: a Learner or the path of a file written by `learn.export`."""
    return colourize_many(learn, [img], render_size, bs=1)[0]


def _atomic_save(im: Image.Image, out: Path):
    "Write to a temporary file beside `out`, then rename: an interruption never leaves a half-written image."
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{out.name}.', suffix='.tmp', dir=out.parent)
    os.close(fd)
    fmt = Image.registered_extensions().get(out.suffix.lower(), 'PNG')
    try:
        if fmt == 'JPEG':
            im.convert('RGB').save(tmp, fmt, quality=95)
        else: im.save(tmp, fmt)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp): os.remove(tmp)
        raise


def colourize_folder(learn, src, dst, render_size=None, bs=16, overwrite=False, display=True) -> dict:
    """Colourise every image under `src` into `dst`, keeping relative paths and file names.
    Never writes over an input; skips outputs that exist unless `overwrite`; writes each file atomically;
    unreadable files are reported at the end (a warning and the 'failed' list) and the rest carry on.
    Returns {'written': [...], 'skipped': [...], 'failed': [(path, reason), ...]}."""
    learn = load_colouriser(learn)
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if src.is_file(): files, root = [src], src.parent
    else: files, root = find_images(src), src
    if dst == root: raise ValueError(f"the output folder {dst} is the input folder: it would overwrite the inputs")
    files = [f.resolve() for f in files if dst not in f.resolve().parents]   # never read our own outputs
    if not files: raise ValueError(f"no images to colourise in {src}")
    inputs = set(files)
    res = {'written': [], 'skipped': [], 'failed': []}
    todo = []
    for f in files:
        out = dst / f.relative_to(root)
        if out.resolve() in inputs: raise ValueError(f"{out} is an input image: refusing to overwrite it")
        if out.exists() and not overwrite: res['skipped'].append(out)
        else: todo.append((f, out))
    for k in progress_bar(range(0, len(todo), bs), display=display):
        chunk, greys = [], []
        for f, out in todo[k:k + bs]:
            try: greys.append(GreyImage.create(f)); chunk.append(out)
            except Exception as e: res['failed'].append((f, f"{type(e).__name__}: {e}"))
        if not greys: continue
        for im, out in zip(colourize_many(learn, greys, render_size, bs), chunk):
            _atomic_save(im, out)
            res['written'].append(out)
    if res['failed']:
        warnings.warn(f"could not colourise {len(res['failed'])} file(s): " +
                      '; '.join(f"{f} ({why})" for f, why in res['failed']))
    return res


def export_onnx(learn, path, opset=17):
    """Export the generator (L -> ab) to ONNX with dynamic batch, height and width (needs the `onnx` package;
    run it with onnxruntime). Sizes that are a multiple of the encoder's stride reproduce torch exactly."""
    learn = load_colouriser(learn)
    G = get_model(learn.model).cpu().eval()
    h, w = getattr(G, 'img_size', (64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(G, (torch.zeros(2, 1, h, w),), str(path), input_names=['L'], output_names=['ab'],
                          dynamic_axes={'L': {0: 'batch', 2: 'height', 3: 'width'},
                                        'ab': {0: 'batch', 2: 'height', 3: 'width'}},
                          opset_version=opset, dynamo=False)
    return Path(path)
