"CachedDL: batches from memory equal the per-item DataLoader's, flips stay random, nothing else is frozen."
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from colourgan_fastai import colour_dls, colour_learner, load_colourizer

from colourgan_fastai.cache import CachedDL
from colourgan_fastai.data import colour_datablock, dls_from_lists


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    "48 random 16x16 PNGs: images already at the training size, like CIFAR-10."
    d = tmp_path_factory.mktemp('same_size')
    rng = np.random.RandomState(0)
    for i in range(48):
        Image.fromarray((rng.rand(16, 16, 3) * 255).astype(np.uint8)).save(d / f'{i:02d}.png')
    return d


def _dls(folder, cache, **kw):
    return colour_dls(folder, size=16, bs=8, cache=cache, **kw)


def _cached_L(dl):
    "The L channel of every cached image, through the loader's own batch transforms (as a batch would get it)."
    from fastai.vision.all import TensorImage
    types, (imgs,) = dl.cache
    assert imgs.dtype == torch.uint8 and imgs.shape[1:] == (3, 16, 16)           # 3 bytes a pixel
    return dl.after_batch((TensorImage(imgs),))[0]


def test_cached_batches_equal_the_per_item_pipeline(folder):
    cached, plain = _dls(folder, True), _dls(folder, False)
    assert isinstance(cached.train, CachedDL) and isinstance(cached.valid, CachedDL)
    assert not isinstance(plain.valid, CachedDL)
    got, want = list(cached.valid), list(plain.valid)
    assert len(got) == len(want) == len(plain.valid)
    for b, p in zip(got, want):
        assert [type(x) for x in b] == [type(x) for x in p]
        for x, y in zip(b, p): assert torch.equal(x, y)


def test_training_epoch_covers_every_image_once_with_random_flips(folder):
    dls = _dls(folder, True)
    L_all = _cached_L(dls.train)
    keys = {}
    for i, img in enumerate(L_all): keys[img.numpy().tobytes()] = (i, False); keys[img.flip(-1).numpy().tobytes()] = (i, True)
    epochs = []
    for _ in range(2):
        seen, flipped = [], []
        for L_, ab in dls.train:
            assert L_.shape[0] == 8 and ab.shape == (8, 2, 16, 16)
            for img in L_:
                i, f = keys[img.numpy().tobytes()]           # each image is a cached image or its mirror
                seen.append(i); flipped.append(f)
        assert len(seen) == len(dls.train) * 8 and len(set(seen)) == len(seen)      # no repeats in an epoch
        assert 0 < sum(flipped) < len(flipped)                                       # both orientations occur
        epochs.append(seen)
    assert epochs[0] != epochs[1]                                                    # reshuffled each epoch
    valid_L = torch.cat([b[0] for b in dls.valid])                                   # validation: in order,
    assert torch.equal(valid_L, _cached_L(dls.valid))                              # never flipped


def test_flip_probability_follows_the_item_pipeline(folder):
    from fastai.vision.all import FlipItem, get_image_files, RandomSplitter
    db = colour_datablock(splitter=RandomSplitter(seed=0), size=16, flip=False)
    db.item_tfms.append(FlipItem(p=1.))
    dls = db.dataloaders(get_image_files(folder), bs=8, dl_type=CachedDL)
    L_all = _cached_L(dls.train)
    mirrored = {img.flip(-1).numpy().tobytes() for img in L_all}
    assert dls.train.flip_p == 1. and dls.valid.flip_p == 0.
    assert all(img.numpy().tobytes() in mirrored for L_, _ in dls.train for img in L_)    # p=1: every image


def test_random_item_augmentations_are_refused_not_frozen_and_batch_augmentations_run(folder):
    from fastai.vision.all import RandomResizedCrop, get_image_files, RandomSplitter, Brightness
    db = colour_datablock(splitter=RandomSplitter(seed=0), size=16)
    db.item_tfms.append(RandomResizedCrop(16))
    dls = db.dataloaders(get_image_files(folder), bs=8, dl_type=CachedDL)
    with pytest.raises(ValueError, match='RandomResizedCrop'): dls.train.one_batch()
    # batch transforms are not cached: a random batch augmentation differs from epoch to epoch
    db = colour_datablock(splitter=RandomSplitter(seed=0), size=16, flip=False)
    db.batch_tfms.insert(0, Brightness(max_lighting=0.5, p=1.))
    dls = db.dataloaders(get_image_files(folder), bs=8, dl_type=CachedDL, shuffle=False)
    a, b = dls.train.one_batch()[0], dls.train.one_batch()[0]
    assert not torch.equal(a, b)


def test_cache_is_not_pickled_and_export_stays_small(folder, tmp_path):
    dls = _dls(folder, True)
    unbuilt = len(pickle.dumps(dls.train))
    dls.train.one_batch()
    cache_bytes = dls.train.cache[1][0].numel()
    assert abs(len(pickle.dumps(dls.train)) - unbuilt) < cache_bytes // 10          # the images are not in it
    assert cache_bytes == len(dls.train_ds) * 3 * 16 * 16
    assert pickle.loads(pickle.dumps(dls.train))._cache is None
    learn = colour_learner(dls, arch='resnet20_cifar', pretrained=False)
    learn.fit(1, 1e-3)                                   # a Learner trains on cached batches
    learn.export(tmp_path / 'm.pkl')
    model_bytes = sum(p.numel() for p in learn.model.parameters()) * 4
    assert (tmp_path / 'm.pkl').stat().st_size < model_bytes * 1.5 + 200_000    # weights and code, no images
    assert load_colourizer(tmp_path / 'm.pkl').model.img_size == (16, 16)


def test_show_batch_and_test_dl_work_on_cached_loaders(folder):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    dls = _dls(folder, True)
    dls.show_batch(max_n=4)
    assert len([ax for ax in plt.gcf().axes if ax.images]) == 8          # grey input and colour target each
    plt.close('all')
    tdl = dls.test_dl(sorted(folder.glob('*.png'))[:5])
    L_, ab = tdl.one_batch()
    assert isinstance(tdl, CachedDL) and L_.shape == (5, 1, 16, 16) and ab.shape == (5, 2, 16, 16)


def test_fastai_distributed_loader_serves_the_cached_batches(folder, monkeypatch):
    "DistributedDL (learn.distrib_ctx) calls create_batches of the wrapped loader: shards come from the cache."
    from fastai.distributed import DistributedDL
    monkeypatch.setattr(DistributedDL, '_broadcast', lambda self, t, rank: t)        # no process group here
    dls = _dls(folder, True)
    L_all = _cached_L(dls.train)
    stored = {img.numpy().tobytes() for img in L_all} | {img.flip(-1).numpy().tobytes() for img in L_all}
    dls.train.do_item = lambda s: pytest.fail("the per-item path was used")              # only the cache may serve
    seen = []
    for rank in (0, 1):
        ddl = DistributedDL(dls.train, rank=rank, world_size=2)
        for L_, ab in ddl:
            assert L_.shape[1:] == (1, 16, 16) and ab.shape[1:] == (2, 16, 16)
            assert L_.min() >= -1 and L_.max() <= 1 and L_.std() > 0.1      # Lab-normalised once, not divided again
            seen += [img.numpy().tobytes() for img in L_]
    assert set(seen) <= stored and len(seen) == len(dls.train) * 8


def test_empty_training_list_is_a_clear_error():
    with pytest.raises(ValueError, match='no training images'): dls_from_lists([], [1], 16, 4, cache=True)
