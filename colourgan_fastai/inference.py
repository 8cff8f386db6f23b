"""Colourise real photos of any size, one file or a whole folder.

DeOldify's insight: predict chroma at a low *render* size, upsample it, and put it on the original
full-resolution L, so edges stay as sharp as the input. The render is reflect-padded by a border that is cropped
off the prediction again, so the network's own edge effects (zero padding makes a U-Net tint the outermost pixels)
fall outside the photo. Out-of-gamut colours are fixed by shrinking chroma,
never by clipping RGB, so the output's lightness is the input's. Full-resolution work is done in strips of
rows, so memory stays bounded for very large images.
"""
import os
import tempfile
import warnings
from glob import escape as glob_escape
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from fastai.torch_core import get_model
from fastprogress.fastprogress import progress_bar

from .data import folder_images
from .images import image_array, array_scale, to_unit_float, n_frames, image_frames
from .lab import rgb_to_lab, lab_to_rgb, fit_lab_in_gamut, L_SCALE, L_SHIFT, AB_SCALE
from .models import check_colourizer

__all__ = ['colourize', 'colourize_folder', 'colourize_files', 'colourize_many', 'load_colourizer', 'load_colouriser',
           'export_onnx', 'GreyImage', 'plan_outputs', 'folder_jobs', 'output_name']

STRIP_PIXELS = 2 ** 21          # full-resolution work in strips of about 2 M pixels


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
        for r0, r1 in _strips(H, W):
            x = torch.from_numpy(to_unit_float(arr[r0:r1], scale)).permute(2, 0, 1)
            if x.shape[0] == 1: x = x.expand(3, -1, -1)
            L[r0:r1] = rgb_to_lab(x)[0].numpy()
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


load_colouriser = load_colourizer            # deprecated spelling, kept for old scripts


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


def _border(h, w):
    """Reflect padding around a render of h x w: a multiple of 8 near an eighth of the short side (16 px at 96,
    8 at 32), none where the render is too small to reflect (a side of 8 px or less)."""
    p = 8 * -(-min(h, w) // 64)
    return p if p < min(h, w) else 0


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


def _predict(G, greys, render_size, bs, max_pixels=None):
    "ab at render size for each image, batching images whose render shapes agree."
    device = next(G.parameters()).device
    shapes = [_render_shape(*g.size, render_size, max_pixels) for g in greys]
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
                    x = torch.stack([torch.from_numpy(np.array(
                        Image.fromarray(greys[i].L, 'F').resize((w, h), Image.BILINEAR))) for i in chunk])
                    x = (x[:, None] / L_SCALE - L_SHIFT).to(device)
                    p = _border(h, w)
                    if p: x = F.pad(x, (p, p, p, p), mode='reflect')
                    ab = G(x).float().cpu()[..., p:p + h, p:p + w]
                    for j, i in enumerate(chunk): out[i] = ab[j]
    finally: G.train(was_training)
    return out


def _check_positive(name, v, least=1):
    if v is not None and (not isinstance(v, int) or v < least):
        raise ValueError(f"{name} must be an integer >= {least}, got {v!r}")


def colourize_many(learn, imgs, render_size=None, bs=16, max_pixels=None):
    """Colourise a list of images (paths, PIL images or arrays) in batches -> list of PIL images of the input sizes.
    `max_pixels`: the most pixels chroma is predicted on per image (default 16 * render_size^2)."""
    _check_positive('bs', bs); _check_positive('render_size', render_size, 8)
    learn = load_colourizer(learn)
    G = get_model(learn.model)
    render_size = render_size or _default_render_size(G)
    greys = [g if isinstance(g, GreyImage) else GreyImage.create(g) for g in imgs]
    return [_compose(g, ab) for g, ab in zip(greys, _predict(G, greys, render_size, bs, max_pixels))]


def colourize(learn, img, render_size=None, max_pixels=None) -> Image.Image:
    """Colourise one image of any size -> PIL image of the input's size (RGBA when the input has alpha).
    ab is predicted at `render_size` (short side; default: the size the model was trained at; at most
    `max_pixels`) and put on the input's full-resolution L. `learn`: a Learner or the path of a file written by
    `learn.export`. Arrays follow the one image rule of `images.py`; a multi-frame file is refused (see
    `colourize_folder`)."""
    return colourize_many(learn, [img], render_size, bs=1, max_pixels=max_pixels)[0]


# ---------------------------------------------------------------------------------------------- files
TMP_SUFFIX = '.colourgan-tmp'
LOSSLESS_EXTS = {'.png', '.tif', '.tiff', '.bmp', '.ppm'}      # written in their own format, L kept exactly
FORMATS = {'auto': None, 'png': '.png', 'tiff': '.tif', 'jpg': '.jpg'}


def output_name(path: Path, fmt='auto') -> str:
    """The output file name for an input: `auto` keeps lossless formats (PNG, TIFF, BMP, PPM) and writes every other
    one (JPEG, GIF, WebP, PGM) as PNG, so the output's lightness is the input's within 8-bit rounding; `png`,
    `tiff` or `jpg` force a format (JPEG is lossy: its L differs by a few units)."""
    if fmt not in FORMATS: raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    ext = FORMATS[fmt] or (path.suffix if path.suffix.lower() in LOSSLESS_EXTS else '.png')
    return path.stem + ext


def _writable_dir(d: Path):
    "Raise a clear error unless files can be created in folder `d` (or in the nearest folder above it that exists)."
    p = d
    while not p.exists(): p = p.parent
    if not p.is_dir(): raise NotADirectoryError(f"cannot create the output folder {d}: {p} is a file")
    if not os.access(p, os.W_OK | os.X_OK): raise PermissionError(f"the output folder {p} is not writable")


def plan_outputs(jobs, overwrite=False):
    """Check a whole run before any work: `jobs` is [(input file, output path), ...]. Refuses (ValueError) an output
    that is an input (whatever `overwrite` says), two inputs that would write the same output (naming them), an
    output that is a folder, and output folders that cannot be written. Returns (todo, skipped): outputs that
    exist are skipped unless `overwrite`."""
    inputs = {}
    for f, _ in jobs:
        try: st = os.stat(f); inputs[(st.st_dev, st.st_ino)] = f
        except OSError: pass
    by_out, todo, skipped = {}, [], []
    for f, out in jobs:
        by_out.setdefault(os.path.normcase(os.path.abspath(out)), []).append(f)
    clashes = [fs for fs in by_out.values() if len(fs) > 1]
    if clashes:
        raise ValueError("several inputs would write the same output file: " + '; '.join(
            ' and '.join(map(str, fs)) for fs in clashes[:5]) + ('; ...' if len(clashes) > 5 else '') +
            " (rename them, or colourise them into separate folders)")
    for f, out in jobs:
        if out.exists():
            st = out.stat()
            if (st.st_dev, st.st_ino) in inputs:
                raise ValueError(f"{f} would be written to {out}, which is an input ({inputs[(st.st_dev, st.st_ino)]}): "
                                 f"inputs are never written, whatever --overwrite says; choose another output folder")
            if out.is_dir(): raise IsADirectoryError(f"the output {out} is a folder")
        if out.parent.exists() and not out.parent.is_dir():
            raise NotADirectoryError(f"cannot write {out}: {out.parent} is a file")
        (todo if overwrite or not out.exists() else skipped).append((f, out))
    for d in sorted({out.parent for _, out in todo}): _writable_dir(d)
    return todo, [out for _, out in skipped]


def _remove_stale_tmp(out: Path):
    "Temporary files an interrupted (killed) earlier save of `out` left behind."
    if out.parent.is_dir():
        for t in out.parent.glob(f'.{glob_escape(out.name)}.*{TMP_SUFFIX}'): t.unlink(missing_ok=True)


def _umask():
    m = os.umask(0); os.umask(m)
    return m


def _atomic_save(frames, out: Path, durations=None, loop=0):
    """Write one image, or several frames (multi-page TIFF, animated PNG), to a temporary file beside `out`, then
    rename: an interruption never leaves a half-written image. The file gets the permissions any new file gets
    under the user's umask (not the temporary file's 0600)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(out.suffix.lower(), 'PNG')
    if len(frames) > 1 and fmt not in ('PNG', 'TIFF'):
        raise ValueError(f"{len(frames)} frames cannot be written as {fmt}: use PNG or TIFF output")
    fd, tmp = tempfile.mkstemp(prefix=f'.{out.name}.', suffix=TMP_SUFFIX, dir=out.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        im, kw = frames[0], {}
        if fmt == 'JPEG': im, kw = im.convert('RGB'), dict(quality=95)
        if len(frames) > 1:
            kw = dict(save_all=True, append_images=frames[1:])
            if fmt == 'PNG': kw.update(duration=durations or 100, loop=loop)
        im.save(tmp, fmt, **kw)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp): os.remove(tmp)
        raise


def _read_frames(f):
    "Every frame of a file as a GreyImage, with its frame durations and loop count (for animations)."
    with Image.open(f) as im: info = dict(im.info)
    frames = image_frames(f)
    durations = [fr.info.get('duration', info.get('duration', 100)) for fr in frames]
    return [GreyImage.create(fr) for fr in frames], durations, info.get('loop', 0)


def colourize_files(learn, jobs, render_size=None, bs=16, overwrite=False, display=True, max_pixels=None) -> dict:
    """Colourise [(input file, output path), ...]: the whole run is checked first (`plan_outputs`); every frame of a
    multi-frame file is colourised; each output is written atomically; unreadable files are reported at the end (a
    warning and the 'failed' list) and the rest carry on. A failed *write* (disk full, permissions) stops the run
    with an OSError: what was written stays, and a rerun skips it.
    Returns {'written': [...], 'skipped': [...], 'failed': [(path, reason), ...]}."""
    _check_positive('bs', bs); _check_positive('render_size', render_size, 8)
    learn = load_colourizer(learn)
    todo, skipped = plan_outputs(jobs, overwrite)
    res = {'written': [], 'skipped': skipped, 'failed': []}
    for _, out in jobs: _remove_stale_tmp(out)
    for k in progress_bar(range(0, len(todo), bs), display=display and bool(todo)):
        chunk = []
        for f, out in todo[k:k + bs]:
            try: chunk.append((f, out, *_read_frames(f)))
            except Exception as e: res['failed'].append((f, f"{type(e).__name__}: {e}"))
        greys = [g for c in chunk for g in c[2]]
        if not greys: continue
        ims = iter(colourize_many(learn, greys, render_size, bs, max_pixels))
        for f, out, frames, durations, loop in chunk:
            outs = [next(ims) for _ in frames]
            try: _atomic_save(outs, out, durations, loop)
            except ValueError as e: res['failed'].append((f, str(e))); continue
            res['written'].append(out)
    if res['failed']:
        warnings.warn(f"could not colourise {len(res['failed'])} file(s): " +
                      '; '.join(f"{f} ({why})" for f, why in res['failed']))
    return res


def folder_jobs(src, dst, fmt='auto', not_images=None):
    """[(input, output), ...] for a file or a folder of images (`folder_images`): a folder's images keep their paths
    relative to it; images already under `dst` (our own earlier outputs) are not inputs. Files that are not images
    are appended to the list `not_images` when one is given."""
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if not src.exists(): raise FileNotFoundError(f"{src} does not exist")
    if src.is_file(): return [(src, dst / output_name(src, fmt))]
    if dst == src: raise ValueError(f"the output folder {dst} is the input folder: it would overwrite the inputs")
    files, others = folder_images(src)
    files = [f for f in map(Path.resolve, files) if dst not in f.parents]
    others = [f for f in map(Path.resolve, others) if dst not in f.parents]
    if not_images is not None: not_images += others
    if not files:
        raise ValueError(f"no image files to colourise in {src}" +
                         (f" ({len(others)} other file(s), none of them an image)" if others else ''))
    return [(f, dst / f.relative_to(src).parent / output_name(f, fmt)) for f in files]


def colourize_folder(learn, src, dst, render_size=None, bs=16, overwrite=False, display=True, fmt='auto',
                     max_pixels=None) -> dict:
    """Colourise every image under `src` (a folder, searched recursively, or one file) into `dst`, keeping relative
    paths. Never writes an input, whatever `overwrite` says; refuses up front when two inputs would write one
    output; skips outputs that exist unless `overwrite`; colourises every frame of animated GIFs and multi-page
    TIFFs; writes lossless formats by default (`fmt`, see `output_name`), each file atomically and with the
    umask's permissions. Files Pillow cannot open and whose extension is not an image's are left alone and listed
    under 'not_images'; see `colourize_files` for the rest of the result."""
    not_images = []
    res = colourize_files(learn, folder_jobs(src, dst, fmt, not_images), render_size, bs, overwrite, display, max_pixels)
    return {**res, 'not_images': not_images}


def export_onnx(learn, path, opset=17):
    """Export the generator (L -> ab) to ONNX with dynamic batch, height and width (needs the `onnx` package;
    run it with onnxruntime). Sizes that are a multiple of the encoder's stride reproduce torch exactly."""
    learn = load_colourizer(learn)
    G = get_model(learn.model).cpu().eval()
    h, w = getattr(G, 'img_size', (64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(G, (torch.zeros(2, 1, h, w),), str(path), input_names=['L'], output_names=['ab'],
                          dynamic_axes={'L': {0: 'batch', 2: 'height', 3: 'width'},
                                        'ab': {0: 'batch', 2: 'height', 3: 'width'}},
                          opset_version=opset, dynamo=False)
    return Path(path)
