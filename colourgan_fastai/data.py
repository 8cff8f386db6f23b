"""Data: images in, (L, ab) batches out, the fastai way.

Items are RGB images (files, arrays or crops). They are decoded by `PILColour.create`, which turns any
file or array into 8-bit RGB by the one rule of `images.py` (the rule `colourize` uses too), resized/cropped and flipped per item,
collated, and split into Lab by the `LabSplit` *batch* transform, so the conversion runs on the GPU when
there is one. `LabSplit.decodes` turns (L, ab) back into RGB, so `show_batch`, `show_results` and
`predict` show colour pictures.
"""
from collections import namedtuple
from pathlib import Path

import numpy as np
from PIL import Image
from fastai.vision.all import (PILImage, TensorImage, ItemTransform, DataBlock, ImageBlock, Resize, ResizeMethod,
                               FlipItem, get_image_files, untar_data, URLs, IndexSplitter, RandomSplitter)

from .lab import encode_lab, decode_lab
from .images import load_rgb, find_images, check_images
from .cache import CachedDL

__all__ = ['PILColour', 'LabSplit', 'colour_datablock', 'cifar10_dls', 'stl10_dls', 'colour_dls',
           'sample_photos_dls', 'imagenette_dls', 'find_dataset', 'dls_from_folder', 'SAMPLE_PHOTOS',
           'dls_from_lists', 'sample_photo', 'hold_out']

class PILColour(PILImage):
    "A `PILImage` that reads every image type as 8-bit RGB (see `load_rgb`)."
    @classmethod
    def create(cls, fn: Path | str | np.ndarray | Image.Image, **kwargs): return cls(load_rgb(fn))


class LabSplit(ItemTransform):
    "Batch transform: RGB batch in [0,1] -> (L, ab), normalised; decodes back to (grey RGB, RGB)."
    order = 95                                   # after IntToFloatTensor and any augmentation

    def encodes(self, b):
        if len(b) != 1: return b                 # already split (e.g. a batch built by hand)
        L_, ab = encode_lab(b[0])
        return (TensorImage(L_), TensorImage(ab))

    def decodes(self, b):
        L_ = b[0]
        grey = TensorImage(decode_lab(L_, L_.new_zeros(*L_.shape[:-3], 2, *L_.shape[-2:])))
        if len(b) == 1: return (grey,)
        return (grey, *[TensorImage(decode_lab(L_, ab)) for ab in b[1:]])


def colour_datablock(get_x=None, splitter=None, size=64, flip=True, method=ResizeMethod.Crop):
    "The DataBlock behind every factory: one RGB image per item, `LabSplit` makes (L, ab)."
    item_tfms = [Resize(size, method=method)] + ([FlipItem(0.5)] if flip else [])
    return DataBlock(blocks=(ImageBlock(PILColour),), n_inp=1, get_x=get_x, splitter=splitter,
                     item_tfms=item_tfms, batch_tfms=[LabSplit()])


def _seeded_choice(count, n, seed) -> list:
    "The sorted positions of a seeded random `n` of `count` items (the one rule for `_subset` and `hold_out`)."
    return sorted(np.random.RandomState(seed).choice(count, n, replace=False).tolist())


def _subset(items, n, seed):
    "Seeded random subset of `n` items (all of them when n is None)."
    items = list(items)
    if n is None or n >= len(items): return items
    if n <= 0: raise ValueError(f"n_train must be positive, got {n}")
    return [items[i] for i in _seeded_choice(len(items), n, seed)]


def dls_from_lists(train, valid, size, bs, get_x=None, seed=42, cache=False, **kwargs):
    """Train/valid item lists -> colour DataLoaders. `cache=True`: `CachedDL`s that decode and Lab-convert every
    image once and then batch by tensor ops (for equally sized images; see cache.py)."""
    if not len(train): raise ValueError("no training images")
    if not len(valid): raise ValueError("no validation images")
    items = list(train) + list(valid)
    splitter = IndexSplitter(list(range(len(train), len(items))))
    kwargs.setdefault('num_workers', 0)
    if cache: kwargs['dl_type'] = CachedDL
    return colour_datablock(get_x, splitter, size).dataloaders(items, bs=bs, **kwargs)


def hold_out(dls, n, seed=42):
    """Set a seeded `n` of `dls`'s training images aside: returns (DataLoaders that train on the others and validate
    as `dls` does, a DataLoader of (L, ab) batches over the `n` set aside, in validation form: no flips, in order).
    For fitting something after training on images training never saw, e.g. the chroma gain
    (`calibrate_colourfulness(learn, held)`, `colourgan train --calibrate GAP --calibration-images N`), where the
    validation images are a test set. Works on any factory's DataLoaders (files or arrays, `CachedDL` or not)."""
    from fastai.data.core import Datasets, DataLoaders
    train = dls.train_ds
    items = list(train.items)
    if not 0 < n < len(items):
        raise ValueError(f"cannot set {n} of the {len(items)} training images aside (need 0 < n < {len(items)})")
    held = _seeded_choice(len(items), n, seed)
    keep = sorted(set(range(len(items))) - set(held))
    dsets = Datasets([items[i] for i in keep + held], tfms=[tl.tfms for tl in train.tls], n_inp=dls.n_inp,
                     splits=[list(range(len(keep))), list(range(len(keep), len(items)))])
    new = dsets.dataloaders(bs=dls.train.bs, val_bs=dls.valid.bs, after_item=list(dls.train.after_item.fs),
                            after_batch=list(dls.train.after_batch.fs), dl_type=type(dls.train), device=dls.device,
                            num_workers=dls.train.num_workers)
    return DataLoaders(new.train, dls.valid, path=dls.path, device=dls.device), new.valid


# ---------------------------------------------------------------------------------------------- CIFAR-10
def _untar(url, data):
    # fastdownload resolves a relative `data` against ~/.fastai: make it absolute first
    return untar_data(url, data=None if data is None else Path(data).expanduser().resolve())


def _untar_split_dls(url, data, valid_name, n_train, n_valid, size, bs, seed, **kwargs):
    "A data set in fastai's `untar_data` layout with `train/` and `valid_name/` folders -> colour DataLoaders."
    path = _untar(url, data)
    train, valid = (sorted(get_image_files(path / sub)) for sub in ('train', valid_name))
    if not train or not valid: raise FileNotFoundError(f"no images under {path}/train and {path}/{valid_name}")
    return dls_from_lists(_subset(train, n_train, seed), _subset(valid, n_valid, seed), size, bs, seed=seed, **kwargs)


def cifar10_dls(data=None, n_train=8000, size=32, bs=64, seed=42, n_valid=None, cache=True, **kwargs):
    """CIFAR-10 through `untar_data(URLs.CIFAR, data=data)` (downloads when online and absent).
    Train on a seeded subset of `n_train` of the 50,000 training images; validate on the test folder.
    `cache=True` (default): images are decoded and converted to Lab once, then batched from memory (`CachedDL`)."""
    return _untar_split_dls(URLs.CIFAR, data, 'test', n_train, n_valid, size, bs, seed, cache=cache, **kwargs)


def imagenette_dls(data=None, n_train=None, size=96, bs=32, seed=42, n_valid=None, **kwargs):
    """Imagenette (160 px) through `untar_data(URLs.IMAGENETTE_160, data=data)`, cropped to `size`: the
    stand-in for STL-10 where STL-10 cannot be had (natural photos, 5,000 training images here)."""
    return _untar_split_dls(URLs.IMAGENETTE_160, data, 'val', n_train, n_valid, size, bs, seed, **kwargs)


# ---------------------------------------------------------------------------------------------- STL-10
# Items are namedtuples: fastai maps plain tuples element-wise, a namedtuple stays one item.
ArrayIndex = namedtuple('ArrayIndex', 'array index')
Crop = namedtuple('Crop', 'photo top left side')


class ArrayItems:
    "Picklable getter: item i -> the i-th image of a (N, H, W, 3) uint8 array (e.g. a memmap)."
    def __init__(self, arrays): self.arrays = arrays
    def __call__(self, o):
        return np.ascontiguousarray(self.arrays[o.array][o.index])


def read_stl10_binary(fn) -> np.ndarray:
    "torchvision/STL-10 `*_X.bin`: uint8, column-major 3x96x96 per image -> (N, 96, 96, 3) array (memory-mapped)."
    fn = Path(fn)
    n = fn.stat().st_size // (3 * 96 * 96)
    if n == 0 or fn.stat().st_size % (3 * 96 * 96): raise ValueError(f"{fn} is not an STL-10 image binary")
    return np.memmap(fn, np.uint8, 'r', shape=(n, 3, 96, 96)).transpose(0, 3, 2, 1)


def stl10_dls(path, n_train=None, size=96, bs=32, seed=42, n_valid=None, cache=True, **kwargs):
    """STL-10 from torchvision's binary files (`stl10_binary/train_X.bin`, `test_X.bin`) or from an
    image-folder layout with `train/` and `test/` folders (any depth of class folders below).
    `cache=True` (default): images are decoded and converted to Lab once, then batched from memory (`CachedDL`)."""
    path = Path(path)
    if not path.exists(): raise FileNotFoundError(f"STL-10 folder {path} does not exist")
    binp = next((p for p in (path, path / 'stl10_binary') if (p / 'train_X.bin').exists()), None)
    if binp is not None:
        arrays = [read_stl10_binary(binp / 'train_X.bin'), read_stl10_binary(binp / 'test_X.bin')]
        train = [ArrayIndex(0, i) for i in range(len(arrays[0]))]
        valid = [ArrayIndex(1, i) for i in range(len(arrays[1]))]
        return dls_from_lists(_subset(train, n_train, seed), _subset(valid, n_valid, seed), size, bs,
                               get_x=ArrayItems(arrays), seed=seed, cache=cache, **kwargs)
    if (path / 'train').is_dir() and (path / 'test').is_dir():
        return colour_dls(path / 'train', size=size, bs=bs, valid=path / 'test', seed=seed, n_train=n_train,
                          cache=cache, **kwargs)
    raise FileNotFoundError(f"{path} holds neither stl10_binary/train_X.bin nor train/ and test/ image folders")


# ---------------------------------------------------------------------------------------------- any images
def colour_dls(source, size=64, bs=32, valid_pct=0.2, valid=None, seed=42, n_train=None, **kwargs):
    """Any images: a folder (searched recursively) or a list of files. Validation is `valid` (a folder or
    list) if given, else a seeded `valid_pct` split. Unreadable images and images smaller than `size` are
    skipped with a warning that names them; no usable image left is an error. `cache=True` batches from
    memory (`CachedDL`: decoded and Lab-converted once; centre crops only, for images already at `size`)."""
    files = check_images(find_images(source), size)
    if not files: raise ValueError(f"no usable images in {source} (all unreadable or smaller than {size} px)")
    if valid is not None:
        vfiles = check_images(find_images(valid), size)
        train = files
    else:
        if not 0 < valid_pct < 1: raise ValueError(f"valid_pct must be in (0, 1), got {valid_pct}")
        if int(valid_pct * len(files)) < 1 or len(files) < 2:
            raise ValueError(f"{len(files)} usable image(s) leave none for validation at valid_pct={valid_pct}")
        t_idx, v_idx = RandomSplitter(valid_pct, seed)(files)
        vfiles, train = [files[i] for i in sorted(v_idx)], [files[i] for i in sorted(t_idx)]
    kwargs.setdefault('num_workers', None)
    return dls_from_lists(_subset(train, n_train, seed), vfiles, size, bs, seed=seed, **kwargs)


# ---------------------------------------------------------------------------------------------- embedded default
def sample_photo(i) -> np.ndarray:
    "The i-th (modulo their number) colour photo scikit-image ships, as a uint8 (H, W, 3) array."
    return PhotoCrops.photo(SAMPLE_PHOTOS[i % len(SAMPLE_PHOTOS)])


SAMPLE_PHOTOS = ('astronaut.png', 'coffee.png', 'chelsea.png', 'rocket.jpg', 'hubble_deep_field.jpg', 'ihc.png',
                 'retina.jpg', 'motorcycle_left.png', 'motorcycle_right.png')


class PhotoCrops:
    "Picklable getter: (photo, top, left, side) -> that square crop of one of scikit-image's colour photos."
    _cache = {}
    def __call__(self, o):
        return Image.fromarray(self.photo(o.photo)[o.top:o.top + o.side, o.left:o.left + o.side])
    @classmethod
    def photo(cls, name):
        if name not in cls._cache:
            import skimage.data
            cls._cache[name] = np.asarray(load_rgb(Path(skimage.data.__file__).parent / name))
        return cls._cache[name]


def _crop_specs(rng, name, n, size, x0, x1, h):
    "n random square crops (side in [size, 2*size]) inside columns [x0, x1) of a photo of height h."
    out = []
    for _ in range(n):
        side = int(rng.randint(size, min(2 * size, x1 - x0, h) + 1))
        out.append(Crop(name, int(rng.randint(0, h - side + 1)), int(rng.randint(x0, x1 - side + 1)), side))
    return out


def sample_photos_dls(size=64, n=2000, bs=32, seed=42, valid_pct=0.2, **kwargs):
    """The embedded default: `n` random crops of the colour photos scikit-image ships (no download).
    Validation crops come from a held-out strip (the right-most `valid_pct` of every photo), so they
    never overlap a training crop."""
    rng = np.random.RandomState(seed)
    n_val = max(1, int(round(n * valid_pct)))
    train, valid = [], []
    for j, name in enumerate(SAMPLE_PHOTOS):
        h, w = PhotoCrops.photo(name).shape[:2]
        cut = int(w * (1 - valid_pct))
        if min(h, w - cut) < size: raise ValueError(f"size {size} is too large for the sample photos")
        n_tr_j = (n - n_val) // len(SAMPLE_PHOTOS) + (j < (n - n_val) % len(SAMPLE_PHOTOS))
        n_va_j = n_val // len(SAMPLE_PHOTOS) + (j < n_val % len(SAMPLE_PHOTOS))
        train += _crop_specs(rng, name, n_tr_j, size, 0, cut, h)
        valid += _crop_specs(rng, name, n_va_j, size, cut, w, h)
    kwargs.setdefault('num_workers', 0)
    return dls_from_lists(train, valid, size, bs, get_x=PhotoCrops(), seed=seed, **kwargs)


# ---------------------------------------------------------------------------------------------- the data set of a folder
DATASET_DEFAULTS = {'cifar10': (32, 64), 'stl10': (96, 32), 'imagenette': (96, 32), 'folder': (64, 32)}  # size, bs
_DOWNLOADS = ('cifar10', 'imagenette')


def find_dataset(data):
    """What `data` holds, as (kind, root): 'cifar10' or 'imagenette' for a folder in fastai's `untar_data` layout (the
    data set's own folder, or the folder holding it; root: the folder holding it, None to download it when `data` is
    just the name 'cifar10' or 'imagenette' and no such folder exists); 'stl10' for torchvision's `stl10_binary`;
    'folder' for any other folder with images in it (root: the folder). Anything else is a clear error."""
    p = Path(data).expanduser()
    if not p.exists():
        if str(data) in _DOWNLOADS: return str(data), None
        raise FileNotFoundError(f"--data {data} does not exist (a folder of images, or one in CIFAR-10's, STL-10's or "
                                f"Imagenette's layout; the names {' and '.join(_DOWNLOADS)} download those)")
    if not p.is_dir(): raise NotADirectoryError(f"--data {data} is a file: give a folder of images")
    for kind, sub, valid in (('cifar10', 'cifar10', 'test'), ('imagenette', 'imagenette2-160', 'val')):
        if (p / sub / 'train').is_dir() and (p / sub / valid).is_dir(): return kind, p
        if p.name == sub and (p / 'train').is_dir() and (p / valid).is_dir(): return kind, p.parent
    if (p / 'train_X.bin').is_file() or (p / 'stl10_binary' / 'train_X.bin').is_file(): return 'stl10', p
    find_images(p)                                           # a clear error when there is no image in it
    return 'folder', p


def dls_from_folder(data, size=None, bs=None, n_train=None, n_valid=None, seed=42, cache=False, found=None):
    """Colour DataLoaders for whatever `data` holds (`find_dataset`, or `found`: what it already returned for `data`),
    and its kind. Default size and batch size by kind (`DATASET_DEFAULTS`). A plain folder validates on its `valid/`,
    `val/` or `test/` folder beside a `train/` one when it has them, else on a seeded 20 % of its images."""
    kind, root = found or find_dataset(data)
    size, bs = size or DATASET_DEFAULTS[kind][0], bs or DATASET_DEFAULTS[kind][1]
    kw = dict(n_train=n_train, size=size, bs=bs, seed=seed)
    if kind == 'cifar10': return cifar10_dls(root, n_valid=n_valid, **kw), kind
    if kind == 'imagenette': return imagenette_dls(root, n_valid=n_valid, cache=cache, **kw), kind
    if kind == 'stl10': return stl10_dls(root, n_valid=n_valid, **kw), kind
    valid = next((root / v for v in ('valid', 'val', 'test') if (root / v).is_dir()), None)
    if valid is not None and (root / 'train').is_dir():
        return colour_dls(root / 'train', valid=valid, cache=cache, **kw), kind
    return colour_dls(root, cache=cache, **kw), kind
