"""`CachedDL`: a fastai `TfmdDL` that decodes its images once and serves batches from a uint8 tensor in memory.

The per-item DataLoader opens, crops, flips and collates every image in Python on every epoch. For a data set of
small, equally sized images (CIFAR-10, STL-10) the opening and cropping is the same every epoch, so `CachedDL`
does it once: on first use it runs each item through the item pipeline *without its flips* and in its validation
form (the deterministic centre crop of `Resize`), and keeps the uint8 result, (N, 3, H, W), 3 bytes a pixel: 0.15 GB
for all 50,000 CIFAR-10 images, 2.8 GB for all 100,000 unlabeled STL-10 images at 96 px. `create_batches` serves
each batch as one gather of rows plus, on the training set, a random horizontal flip of each image with the item
pipeline's `FlipItem` probability. Everything after that is fastai's own DataLoader: the batch is moved to the
device and the batch transforms (`IntToFloatTensor`, `LabSplit`, and any batch augmentation) run as for every
DataLoader. Types, `decode`, `show_batch`, `show_results`, `test_dl`, `learn.export` and fastai's `DistributedDL`
(which shards `create_batches`) work unchanged; the cache is never pickled.

Random item transforms other than flips (e.g. `RandomResizedCrop`) cannot be cached: they raise a ValueError
rather than being frozen. Each image keeps its centre crop, so the cache is for data sets whose images already
have the training size.
"""
import torch
from fastai.data.core import TfmdDL
from fasttransform import Pipeline
from fastai.data.load import fa_collate
from fastai.vision.augment import Resize, FlipItem
from fastai.vision.core import ToTensor
from fastprogress.fastprogress import progress_bar

__all__ = ['CachedDL']

_CACHEABLE_ITEM_TFMS = (Resize, FlipItem, ToTensor)


def _check_cacheable(dl):
    "Refuse item pipelines whose random augmentations the cache would silently freeze."
    bad = [type(t).__name__ for t in dl.after_item.fs if not isinstance(t, _CACHEABLE_ITEM_TFMS)]
    if bad: raise ValueError(f"cache=True supports Resize and flips as item transforms; this pipeline also has "
                             f"{', '.join(bad)}: use cache=False, or move random augmentation to batch transforms")


class CachedDL(TfmdDL):
    "A `TfmdDL` whose item pipeline runs once per image; batches come from a uint8 tensor (see the module docstring)."
    chunk = 512                                      # items decoded per step while building the cache

    def __init__(self, dataset=None, **kwargs):
        kwargs['num_workers'] = 0                    # batches are one gather: worker processes only add overhead
        super().__init__(dataset, **kwargs)
        self._cache = None

    def new(self, dataset=None, cls=None, **kwargs):
        res = super().new(dataset, cls, **kwargs)
        if dataset is None or dataset is self.dataset: res._cache = self._cache   # same items: share the tensor
        return res

    def __getstate__(self):                          # never pickle the cache (learn.export, worker processes)
        return {**self.__dict__, '_cache': None}

    @property
    def flip_p(self) -> float:
        "Probability of a horizontal flip: the item pipeline's `FlipItem(p)` on the training set, else 0."
        if getattr(self.dataset, 'split_idx', None) != 0: return 0.
        return next((float(t.p) for t in self.after_item.fs if isinstance(t, FlipItem)), 0.)

    @property
    def cache(self):
        "(types, tensors): the collated, unflipped item-pipeline output of every item (uint8 images), built on first use."
        if self._cache is None: self.build_cache()
        return self._cache

    def build_cache(self):
        "Run every item once through the item pipeline without flips, in its deterministic (validation) form."
        _check_cacheable(self)
        n = len(self.dataset)
        if n == 0: raise ValueError("CachedDL: the data set is empty")
        pipe = Pipeline([t for t in self.after_item.fs if not isinstance(t, FlipItem)], split_idx=1)
        parts = []
        for s in progress_bar(range(0, n, self.chunk), display=n > 4 * self.chunk, leave=False):
            b = fa_collate([pipe(self.dataset[i]) for i in range(s, min(s + self.chunk, n))])
            parts.append(b)
        types = [type(o) for o in parts[0]]
        self._cache = (types, [torch.cat([p[i].as_subclass(torch.Tensor) for p in parts]).contiguous()
                               for i in range(len(types))])
        return self

    def create_batches(self, samps):
        """Collated batches of the sampled indices (fastai's DataLoader and `DistributedDL` call this): one gather
        per tensor and a per-image random flip; the batch transforms then run as usual."""
        types, tensors = self.cache
        idxs = torch.as_tensor(list(samps), dtype=torch.long)
        g = torch.Generator().manual_seed(self.rng.getrandbits(63))
        p, bs = self.flip_p, self.bs
        for s in range(0, len(idxs), bs):
            ix = idxs[s:s + bs]
            if self.drop_last and len(ix) < bs: break
            b = [t.index_select(0, ix) for t in tensors]
            if p > 0:
                m = torch.rand(len(ix), generator=g) < p
                for t in b:
                    if t.ndim == 4: t[m] = t[m].flip(-1)
            yield tuple(typ(t) for typ, t in zip(types, b))
