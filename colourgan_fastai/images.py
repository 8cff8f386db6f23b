"""Reading images: one rule for every file, PIL image and array, shared by training and inference.

**Layout.** Channel-last: (H, W) grey, or (H, W, C) with C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
A channel-first array (C, H, W) with C in {1, 3, 4} is accepted when its last axis cannot be channels (> 4). An
array that reads both ways, e.g. (3, 4, 4), is refused: pass it channel-last.

**Values.** uint8 is 0-255; uint16 is 0-65535; bool is 0/1; any other integer type must hold 8-bit values
(0-255), anything else is refused rather than guessed (convert 16-bit data to uint16); floats must lie in [0, 1]
(a float image in 0-255 is refused with the advice to divide by 255); NaN or infinite values are refused.
PIL's own modes keep PIL's meaning: 'I;16' and 'I' (16-bit PNG and TIFF greys) are 16-bit, 'F' is on PIL's
0-255 scale (as `Image.convert('L')` reads it). Alpha is composited on white for training and kept by
`colourize`. EXIF orientation is applied to files and PIL images.

Deliberately not scikit-image's `img_as_float`: it scales int32 by 2^31 (an int32 photo comes out black) and
passes floats in 0-255 through, the two silent failures this rule exists to refuse.
"""
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, ImageSequence
from fastai.vision.all import get_image_files, get_files, image_extensions, progress_bar

__all__ = ['open_image', 'image_array', 'array_scale', 'to_unit_float', 'rgb_uint8', 'load_rgb', 'n_frames',
           'image_frames', 'find_images', 'folder_images', 'check_images']
_FLOAT_TOL = 1e-3             # float images may overshoot [0, 1] by rounding noise this large; it is clipped


def open_image(src) -> Image.Image:
    "Open a path or file object and apply its EXIF orientation (fully loaded, so corrupt files fail here)."
    im = Image.open(src)
    im.load()
    return ImageOps.exif_transpose(im)


def n_frames(src) -> int:
    "Frames (pages) of an image file or PIL image: 1 for most, more for animated GIF/PNG/WebP and multi-page TIFF."
    if isinstance(src, Image.Image): return getattr(src, 'n_frames', 1)
    with Image.open(src) as im: return getattr(im, 'n_frames', 1)


def image_frames(src) -> list:
    "Every frame of a path or PIL image as an EXIF-oriented PIL image (one element for a still image)."
    im = Image.open(src) if isinstance(src, (str, Path)) else src
    try:
        frames = [ImageOps.exif_transpose(f.copy()) for f in ImageSequence.Iterator(im)]
    finally:
        if im is not src: im.close()
    return frames


def _pil_to_array(im: Image.Image) -> np.ndarray:
    "PIL image of any mode -> numpy array at its full bit depth, alpha kept, values on the scale the rule expects."
    if im.mode == 'P': im = im.convert('RGBA' if 'transparency' in im.info else 'RGB')
    if im.mode in ('I;16', 'I;16B', 'I;16L', 'I;16N'): return np.asarray(im, dtype=np.uint16)
    if im.mode == 'I':                               # 32-bit int mode: how PIL opens 16-bit PNG/TIFF greys
        a = np.asarray(im, dtype=np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ValueError(f"32-bit integer image with values in [{a.min()}, {a.max()}]: only 16-bit (0-65535) "
                             f"integer images are read")
        return a.astype(np.uint16)
    if im.mode == 'F':                               # PIL's float mode is on the 0-255 scale
        a = np.asarray(im, dtype=np.float32)
        _check_finite(a)
        if a.size and (a.min() < -255 * _FLOAT_TOL or a.max() > 255 * (1 + _FLOAT_TOL)):
            raise ValueError(f"float ('F') image with values in [{a.min():g}, {a.max():g}]: PIL's 'F' images are "
                             f"read on the 0-255 scale")
        return a / 255
    if im.mode not in ('L', 'LA', 'RGB', 'RGBA'): im = im.convert('RGBA' if 'A' in im.getbands() else 'RGB')
    return np.asarray(im)


def _channel_last(arr: np.ndarray) -> np.ndarray:
    "Apply the layout rule: (H, W), (H, W, C) or an unambiguous (C, H, W) -> (H, W, C)."
    if arr.ndim == 2: return arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f"expected an image array of shape (H, W), (H, W, C) or (C, H, W), got {arr.shape}")
    last_ok, first_ok = arr.shape[-1] in (1, 2, 3, 4), arr.shape[0] in (1, 3, 4)
    if last_ok and first_ok:
        raise ValueError(f"ambiguous image array of shape {arr.shape}: it reads as (H, W, C) and as (C, H, W); "
                         f"pass it channel-last, (H, W, C)")
    if first_ok: return np.moveaxis(arr, 0, -1)
    if last_ok: return arr
    raise ValueError(f"image array of shape {arr.shape} has no channel axis of 1-4 (grey, grey+alpha, RGB, RGBA)")


def _check_finite(a):
    bad = int(a.size - np.isfinite(a).sum())
    if bad: raise ValueError(f"the image has {bad} NaN or infinite value(s): refusing to guess their colour; "
                             f"repair them first (e.g. numpy.nan_to_num)")


def array_scale(arr: np.ndarray) -> float:
    "The divisor that maps `arr`'s values to [0, 1] under the module's rule; a ValueError where the rule refuses."
    if arr.dtype == np.uint8: return 255.
    if arr.dtype == np.uint16: return 65535.
    if arr.dtype == bool: return 1.
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 255:
            raise ValueError(f"{arr.dtype} image with values in [{lo}, {hi}]: integer arrays other than uint8/uint16 "
                             f"must hold 8-bit values (0-255); convert 16-bit data to uint16")
        return 255.
    if np.issubdtype(arr.dtype, np.floating):
        _check_finite(arr)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0., 0.)
        if lo < -_FLOAT_TOL or hi > 1 + _FLOAT_TOL:
            hint = ' (divide an 8-bit image by 255)' if hi <= 255 * (1 + _FLOAT_TOL) and lo >= -_FLOAT_TOL else ''
            raise ValueError(f"float image with values in [{lo:g}, {hi:g}]: float images must lie in [0, 1]{hint}")
        return 1.
    raise ValueError(f"unsupported image array dtype {arr.dtype}")


def to_unit_float(arr: np.ndarray, scale: float) -> np.ndarray:
    "Values (already checked by `array_scale`) -> float32 in [0, 1]."
    return np.clip(arr.astype(np.float32) / np.float32(scale), 0, 1)


def image_array(src) -> np.ndarray:
    """Path | PIL image | array -> (H, W, C) array at the image's full bit depth, alpha kept, EXIF applied, layout
    and values checked by the module's rule (so `array_scale` of the result never refuses)."""
    if isinstance(src, np.ndarray): arr = _channel_last(src)
    elif isinstance(src, Image.Image): arr = _pil_to_array(ImageOps.exif_transpose(src))
    elif isinstance(src, (str, Path)) or hasattr(src, 'read'): arr = _pil_to_array(open_image(src))
    else: raise TypeError(f"expected a path, PIL image or numpy array, got {type(src).__name__}")
    if arr.ndim == 2: arr = arr[..., None]                 # PIL arrays are channel-last by construction
    if min(arr.shape[:2]) < 1: raise ValueError(f"empty image array of shape {arr.shape}")
    array_scale(arr)
    return arr


def rgb_uint8(arr: np.ndarray) -> np.ndarray:
    "A checked (H, W, C) array -> (H, W, 3) uint8 RGB, alpha composited on white (the training loader's view)."
    if arr.dtype == np.uint8 and arr.shape[-1] == 3: return arr
    f = to_unit_float(arr, array_scale(arr))
    if f.shape[-1] in (2, 4):
        a = f[..., -1:]
        f = f[..., :-1] * a + (1 - a)
    if f.shape[-1] == 1: f = np.repeat(f, 3, -1)
    return (f * 255 + 0.5).astype(np.uint8)


def load_rgb(src) -> Image.Image:
    "Path | PIL image | numpy array (grey, palette, RGBA, 16-bit, float) -> 8-bit RGB PIL image, by the module's rule."
    if isinstance(src, Image.Image) and src.mode == 'RGB': return ImageOps.exif_transpose(src)
    if isinstance(src, (str, Path)) or hasattr(src, 'read'):
        im = open_image(src)
        if im.mode == 'RGB': return im                                   # the common case: no copy
        src = im
    return Image.fromarray(rgb_uint8(image_array(src)))


# ---------------------------------------------------------------------------------------------- folders of images
def find_images(src) -> list:
    """Image files in a folder (fastai's `get_image_files`, recursive, sorted) or a list of paths; clear errors for
    missing and empty folders."""
    if isinstance(src, (str, Path)):
        src = Path(src)
        if not src.exists(): raise FileNotFoundError(f"{src} does not exist")
        if src.is_file(): return [src]
        files = sorted(get_image_files(src))
        if not files: raise ValueError(f"no image files found in {src}")
        return files
    files = list(src)
    if not files: raise ValueError("the list of images is empty")
    return files


_IMAGE_EXTS = {e.lower() for e in image_extensions}


def _opens_as_image(f) -> bool:
    "Whether Pillow recognises `f` as an image from its header."
    try:
        with Image.open(f): return True
    except Image.DecompressionBombError: return True        # an image; colourize_files reports why it is refused
    except Exception: return False


def folder_images(src):
    """(images, others): the files under folder `src`, recursively and sorted, hidden files and folders excluded as
    fastai's `get_files` does. Images are the files with an image extension plus every other file Pillow can open,
    so a photo with no extension or an unusual one (`.mpo`, `.tga`, a scanner's `scan0001`) is not passed over;
    `others` are the files that are not images, which the caller reports rather than drops silently."""
    imgs, others = [], []
    for f in sorted(get_files(src, recurse=True)):
        (imgs if f.suffix.lower() in _IMAGE_EXTS or _opens_as_image(f) else others).append(f)
    return imgs, others


def check_images(files, min_size=0, verbose=True):
    """Fully decode each image; skip unreadable ones and ones smaller than `min_size` on the short side,
    with one warning naming them. Returns the good ones."""
    good, bad, small = [], [], []
    for f in progress_bar(files, display=verbose and len(files) > 200, leave=False):
        if not isinstance(f, (str, Path)): good.append(f); continue
        try:
            with Image.open(f) as im:
                im.load()
                w, h = im.size
        except Exception as e:
            bad.append(f"{f} ({type(e).__name__}: {e})"); continue
        (small if min(w, h) < min_size else good).append(f)
    if bad: warnings.warn(f"skipped {len(bad)} unreadable image(s): " + '; '.join(map(str, bad)))
    if small: warnings.warn(f"skipped {len(small)} image(s) smaller than {min_size} px: " + ', '.join(map(str, small)))
    return good
