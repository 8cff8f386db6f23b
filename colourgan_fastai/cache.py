"""`CachedDL`: a fastai `TfmdDL` that decodes and Lab-converts its images once, then serves batches by tensor ops.

The per-item DataLoader opens, crops, flips and collates every image in Python on every epoch, and the `LabSplit`
batch transform converts each batch to Lab again. For a data set of small, equally sized images (CIFAR-10,
STL-10) that work is the same every epoch, so `CachedDL` does it once: on first use it runs each item through the
item pipeline in its *validation* form (the centre crop of `Resize`, no flip) and the batch pipeline
(`IntToFloatTensor`, `LabSplit`), and keeps the resulting (L, ab) tensors in memory. A batch is then one gather
of rows, plus — on the training set — a random horizontal flip of each image (flipping commutes with the per-pixel
Lab conversion, so this equals flip-then-convert). Types, `decode`, `show_batch`, `show_results`, `test_dl` and
`learn.export` work as with any `TfmdDL`; the cache is never pickled. The batches come from `create_batches`, so
fastai's `DistributedDL` (`learn.distrib_ctx`) shards them like any other; they are marked as converted, and the
batch pipeline passes them through instead of converting them twice.

Memory: 12 bytes per pixel (float32 L and ab): 12 KB per 32 px image (0.6 GB for all 50,000 CIFAR-10 images),
110 KB per 96 px image. Random crops of larger images are not reproduced (each image keeps its centre crop),
so the cache is for data sets whose images already have the training size; other augmentations raise an error.
"""
import torch
from fastai.data.core import TfmdDL
from fasttransform import Pipeline
from fastai.torch_core import to_device
from fastai.data.load import fa_collate
from fastai.vision.augment import Resize, FlipItem
from fastai.vision.core import ToTensor
from fastai.data.transforms import IntToFloatTensor
from fastprogress.fastprogress import progress_bar

__all__ = ['CachedDL']

_CACHEABLE_ITEM_TFMS = (Resize, FlipItem, ToTensor)
_CACHEABLE_BATCH_TFMS = (IntToFloatTensor,)          # and any batch transform marked `deterministic = True` (LabSplit)


def _check_cacheable(dl):
    "Refuse pipelines whose random augmentations the cache would silently freeze."
    bad = [type(t).__name__ for t in dl.after_item.fs if not isinstance(t, _CACHEABLE_ITEM_TFMS)]
    bad += [type(t).__name__ for t in dl.after_batch.fs
            if not (isinstance(t, _CACHEABLE_BATCH_TFMS) or getattr(t, 'deterministic', False))]
    if bad: raise ValueError(f"cache=True supports Resize, flips and the Lab split only; this pipeline also has "
                             f"{', '.join(bad)}: use cache=False for other augmentations")


class _Converted(tuple):
    "A batch already in its final form: the batch pipeline passes it through (see `_PassConverted`)."


class _PassConverted(Pipeline):
    "The DataLoader's batch pipeline, except that batches served from the cache (already converted) pass as they are."
    def __call__(self, o): return tuple(o) if isinstance(o, _Converted) else super().__call__(o)


class CachedDL(TfmdDL):
    "A `TfmdDL` whose batches come from (L, ab) tensors computed once (see the module docstring)."
    chunk = 512                                      # items converted per step while building the cache

    def __init__(self, dataset=None, **kwargs):
        kwargs['num_workers'] = 0                    # batches are one gather: worker processes only add overhead
        kwargs['pin_memory'] = False                 # pinning would rebuild the batch tuple and lose its marker
        super().__init__(dataset, **kwargs)
        self.after_batch.__class__ = _PassConverted  # encodes and decodes unchanged for every other batch
        self._cache = None

    def new(self, dataset=None, cls=None, **kwargs):
        res = super().new(dataset, cls, **kwargs)
        if dataset is None or dataset is self.dataset: res._cache = self._cache   # same items: share the tensors
        return res

    def __getstate__(self):                          # never pickle the cache (learn.export, worker processes)
        return {**self.__dict__, '_cache': None}

    @property
    def flip_p(self) -> float:
        "Probability of a horizontal flip: the item pipeline's `FlipItem(p)` on the training set, else 0."
        if getattr(self.dataset, 'split_idx', None) != 0: return 0.
        return next((float(t.p) for t in self.after_item.fs if isinstance(t, FlipItem)), 0.)

    def build_cache(self):
        "Decode every item once (centre crop, no flip), convert to (L, ab) with the batch pipeline, keep it."
        _check_cacheable(self)
        n = len(self.dataset)
        if n == 0: raise ValueError("CachedDL: the data set is empty")
        item_split, batch_split = self.after_item.split_idx, self.after_batch.split_idx
        self.after_item.split_idx, self.after_batch.split_idx = 1, 1          # validation form: deterministic
        parts = []
        try:
            starts = range(0, n, self.chunk)
            for s in progress_bar(starts, display=n > 4 * self.chunk, leave=False):
                b = fa_collate([self.after_item(self.dataset[i]) for i in range(s, min(s + self.chunk, n))])
                out = self.after_batch(b)
                if len(out) != 2: raise ValueError("CachedDL expects the batch pipeline to end in (L, ab)")
                parts.append([o.as_subclass(torch.Tensor) for o in out])
        finally: self.after_item.split_idx, self.after_batch.split_idx = item_split, batch_split
        types = [type(o) for o in out]
        self._cache = (types, [torch.cat(p).contiguous() for p in zip(*parts)])
        return self

    def __iter__(self):
        "fastai's `DataLoader.__iter__` minus the detour through torch's DataLoader (no workers, nothing to pin)."
        self.randomize()
        self.before_iter()
        for b in self.create_batches(self.get_idxs()): yield self.after_batch(to_device(b, self.device))
        self.after_iter()

    def create_batches(self, samps):
        """Batches of the sampled indices (fastai's `DataLoader.__iter__` and `DistributedDL` call this): one gather
        per tensor and a per-image random flip, returned as already-converted batches."""
        if self._cache is None: self.build_cache()
        types, tensors = self._cache
        idxs = torch.as_tensor(list(samps), dtype=torch.long)
        g = torch.Generator().manual_seed(self.rng.getrandbits(63))
        p, bs = self.flip_p, self.bs
        for s in range(0, len(idxs), bs):
            ix = idxs[s:s + bs]
            if self.drop_last and len(ix) < bs: break
            b = [t.index_select(0, ix) for t in tensors]
            if p > 0:
                m = torch.rand(len(ix), generator=g) < p
                for t in b: t[m] = t[m].flip(-1)
            yield _Converted(typ(t) for typ, t in zip(types, b))
