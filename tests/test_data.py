
import numpy as np
import pytest
import torch
from PIL import Image

from colourgan_fastai import sample_photos_dls, cifar10_dls, stl10_dls, colour_dls, LabSplit

from colourgan_fastai.images import load_rgb

from colourgan_fastai.lab import decode_lab
from fastai.vision.all import TensorImage


def test_batches_are_L_and_ab_with_the_right_shapes(tiny_dls):
    L, ab = tiny_dls.one_batch()
    assert L.shape == (16, 1, 32, 32) and ab.shape == (16, 2, 32, 32)
    assert L.min() >= -1 and L.max() <= 1 and ab.abs().max() <= 1
    assert tiny_dls.n_inp == 1


def test_lab_split_decodes_to_rgb():
    rgb = TensorImage(torch.rand(2, 3, 8, 8))
    L, ab = LabSplit()((rgb,))
    grey, colour = LabSplit().decode((L, ab))
    assert torch.allclose(colour, rgb, atol=1e-4)
    assert grey.shape == (2, 3, 8, 8) and torch.allclose(grey[:, 0], grey[:, 1], atol=1e-4)   # grey: R=G=B
    assert isinstance(colour, TensorImage)


def test_full_pipeline_decode_gives_back_the_images_on_the_0_255_scale(tiny_dls):
    "dls.decode (as show_batch does): LabSplit, then IntToFloatTensor's decode -> the original 8-bit colours."
    dl = tiny_dls.valid
    L, ab = dl.one_batch()
    grey, colour = dl.decode((L, ab))
    item = dl.dataset[0][0]                                         # the first validation crop, as 8-bit RGB
    crop = np.asarray(dl.after_item((item,))[0].permute(1, 2, 0), dtype=float)
    got = colour[0].permute(1, 2, 0).float().numpy()
    assert got.max() > 1.5 and got.min() >= 0 and got.max() <= 255           # 0-255, not 0-1
    assert np.abs(got - crop).max() <= 1.0                          # Lab round trip within 8-bit rounding


def test_show_batch_draws_grey_and_colour(tiny_dls):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    tiny_dls.show_batch(max_n=4)
    axes = plt.gcf().axes
    assert len(axes) == 8 and all(len(ax.images) == 1 for ax in axes)
    grey, colour = (np.asarray(axes[i].images[0].get_array(), dtype=float) for i in (0, 1))
    assert np.abs(grey[..., 0] - grey[..., 2]).max() <= 1 and np.abs(colour[..., 0] - colour[..., 2]).max() > 5
    plt.close('all')


def test_sample_photos_validation_crops_never_overlap_training(tiny_dls):
    from colourgan_fastai.data import PhotoCrops
    for tr in tiny_dls.train.items:
        w = PhotoCrops.photo(tr.photo).shape[1]
        assert tr.left + tr.side <= int(w * 0.8)
    for va in tiny_dls.valid.items:
        assert va.left >= int(PhotoCrops.photo(va.photo).shape[1] * 0.8)
    assert len(tiny_dls.train_ds) + len(tiny_dls.valid_ds) == 96
    again = sample_photos_dls(size=32, n=96, bs=16)
    assert again.train.items == tiny_dls.train.items            # seeded


@pytest.mark.parametrize('mode', ['L', 'P', 'RGBA', 'I;16', 'LA'])
def test_load_rgb_converts_every_mode_correctly(tmp_path, mode):
    rgb = np.zeros((4, 4, 3), np.uint8); rgb[..., 0] = 200; rgb[..., 1] = 100; rgb[..., 2] = 50
    if mode == 'L': im = Image.fromarray(np.full((4, 4), 128, np.uint8)); expect = (128, 128, 128)
    elif mode == 'P': im = Image.fromarray(rgb).convert('P', palette=Image.Palette.ADAPTIVE); expect = (200, 100, 50)
    elif mode == 'RGBA':
        a = np.dstack([rgb, np.full((4, 4), 0, np.uint8)]); a[0, 0, 3] = 255
        im = Image.fromarray(a); expect = (255, 255, 255)           # transparent -> white background
    elif mode == 'LA': im = Image.fromarray(np.full((4, 4), 100, np.uint8)).convert('LA'); expect = (100, 100, 100)
    else: im = Image.fromarray(np.full((4, 4), 40000, np.uint16)); expect = (156, 156, 156)   # 40000/65535*255
    fn = tmp_path / 'x.png'; im.save(fn)
    out = load_rgb(fn)
    assert out.mode == 'RGB' and out.size == (4, 4)
    assert tuple(np.asarray(out)[1, 1]) == expect
    if mode == 'RGBA': assert tuple(np.asarray(out)[0, 0]) == (200, 100, 50)


def test_load_rgb_respects_exif_orientation(tmp_path):
    im = Image.fromarray(np.zeros((10, 20, 3), np.uint8))          # 20 wide, 10 high
    exif = Image.Exif(); exif[0x0112] = 6                          # rotate 90 on display
    fn = tmp_path / 'r.jpg'; im.save(fn, exif=exif)
    assert load_rgb(fn).size == (10, 20)


def test_load_rgb_takes_arrays_and_pil():
    assert load_rgb(np.zeros((5, 6), np.uint8)).size == (6, 5)
    assert load_rgb(np.ones((5, 6, 3), np.float32)).getpixel((0, 0)) == (255, 255, 255)
    assert load_rgb(Image.new('L', (3, 3), 7)).getpixel((1, 1)) == (7, 7, 7)


def test_cifar10_through_untar_data(shared):
    dls = cifar10_dls(data=shared / 'data', n_train=200, bs=50)
    assert len(dls.train_ds) == 200 and len(dls.valid_ds) == 5000
    assert all('/train/' in str(p) for p in dls.train.items) and all('/test/' in str(p) for p in dls.valid.items)
    again = cifar10_dls(data=str(shared / 'data'), n_train=200, bs=50)    # relative/str paths work too
    assert again.train.items == dls.train.items                          # seeded subset
    assert cifar10_dls(data=shared / 'data', n_train=200, seed=1).train.items != dls.train.items
    L, ab = dls.valid.one_batch()
    assert L.shape == (50, 1, 32, 32) and ab.shape == (50, 2, 32, 32)


def _write_stl(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for name, imgs in images.items():
        with open(folder / f'{name}_X.bin', 'wb') as f:
            for img in imgs: f.write(np.ascontiguousarray(img.transpose(2, 1, 0)).tobytes())


def test_stl10_binary_records_decode_to_the_written_images(tmp_path):
    rng = np.random.RandomState(0)
    imgs = [rng.randint(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(6)]
    imgs[0][:48] = (255, 0, 0)     # a recognisable top half: catches a transposed reader
    _write_stl(tmp_path / 'stl10_binary', {'train': imgs[:4], 'test': imgs[4:]})
    dls = stl10_dls(tmp_path, bs=4, n_train=4)
    assert len(dls.train_ds) == 4 and len(dls.valid_ds) == 2
    first = np.asarray(dls.train_ds[0][0])
    assert np.array_equal(first, imgs[0])
    L, ab = dls.valid.one_batch()
    assert L.shape == (2, 1, 96, 96)
    rgb = decode_lab(L, ab)[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(rgb - imgs[4]).max() < 1
    from colourgan_fastai import hold_out  # items that index arrays can be set aside too
    new, held = hold_out(dls, 1, seed=0)
    (i,) = held.dataset.items
    assert len(new.train_ds) == 3 and i not in list(new.train_ds.items)
    L, ab = held.one_batch()
    assert np.abs(decode_lab(L, ab)[0].permute(1, 2, 0).numpy() * 255 - imgs[i.index]).max() < 1


def test_stl10_folder_layout_and_missing(tmp_path):
    for sub in ('train/cls', 'test/cls'):
        (tmp_path / sub).mkdir(parents=True)
        for i in range(3): Image.new('RGB', (96, 96), (i * 40, 0, 0)).save(tmp_path / sub / f'{i}.png')
    dls = stl10_dls(tmp_path, bs=2)
    assert len(dls.train_ds) == 3 and len(dls.valid_ds) == 3
    with pytest.raises(FileNotFoundError): stl10_dls(tmp_path / 'nope')
    with pytest.raises(FileNotFoundError, match='stl10_binary'): stl10_dls(tmp_path / 'train')


def _folder(tmp_path, n=6, size=40):
    for i in range(n): Image.new('RGB', (size, size + i), (i * 30, 100, 200 - i * 20)).save(tmp_path / f'{i}.jpg')
    return tmp_path


def test_colour_dls_on_a_folder(tmp_path):
    dls = colour_dls(_folder(tmp_path, 10), size=32, bs=4)
    assert len(dls.train_ds) == 8 and len(dls.valid_ds) == 2
    assert dls.one_batch()[0].shape == (4, 1, 32, 32)


def test_colour_dls_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError): colour_dls(tmp_path / 'missing', size=32)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no image files'): colour_dls(tmp_path / 'empty', size=32)
    (tmp_path / 'text').mkdir(); (tmp_path / 'text' / 'a.txt').write_text('hi')
    with pytest.raises(ValueError, match='no image files'): colour_dls(tmp_path / 'text', size=32)
    with pytest.raises(ValueError, match='empty'): colour_dls([], size=32)


def test_colour_dls_skips_corrupt_and_small_images_naming_them(tmp_path):
    _folder(tmp_path, 6)
    (tmp_path / 'broken.jpg').write_bytes(b'not an image at all')
    Image.new('RGB', (10, 10)).save(tmp_path / 'tiny.png')
    with pytest.warns(UserWarning) as rec:
        dls = colour_dls(tmp_path, size=32, bs=2)
    msgs = ' '.join(str(w.message) for w in rec)
    assert 'broken.jpg' in msgs and 'tiny.png' in msgs
    items = list(dls.train.items) + list(dls.valid.items)
    assert len(items) == 6 and not any(p.name in ('broken.jpg', 'tiny.png') for p in items)
    only_small = tmp_path / 'small'; only_small.mkdir(); Image.new('RGB', (8, 8)).save(only_small / 'a.png')
    with pytest.warns(UserWarning), pytest.raises(ValueError, match='no usable images'): colour_dls(only_small, size=32)


@pytest.mark.parametrize('cache', [False, True])
def test_hold_out_sets_training_images_aside_for_calibration(tmp_path, cache):
    from colourgan_fastai import hold_out
    dls = colour_dls(_folder(tmp_path, 20), size=32, bs=4, valid_pct=0.25, cache=cache)
    new, held = hold_out(dls, 5, seed=1)
    kept, aside = set(new.train_ds.items), list(held.dataset.items)
    assert len(aside) == 5 and kept.isdisjoint(aside) and kept | set(aside) == set(dls.train_ds.items)
    assert new.valid is dls.valid and type(new.train) is type(dls.train) is type(held)   # validation untouched
    assert aside == [p for p in dls.train_ds.items if p in set(aside)]          # in the training list's order
    assert hold_out(dls, 5, seed=1)[1].dataset.items == aside                    # seeded
    L_, ab = held.one_batch()
    assert L_.shape == (4, 1, 32, 32) and ab.shape == (4, 2, 32, 32)
    first, again = (torch.cat([b[1] for b in held]) for _ in range(2))
    assert len(first) == 5 and torch.equal(first, again)                          # validation form: no random flips
    assert len(new.train_ds) == 10 and sum(len(b[0]) for b in new.train) == 8    # 15 - 5, in full batches of 4
    for n in (0, 15):
        with pytest.raises(ValueError, match=f'cannot set {n} of the 15 training images aside'): hold_out(dls, n)


def test_colour_dls_with_valid_folder_and_subset(tmp_path):
    tr, va = tmp_path / 'tr', tmp_path / 'va'; tr.mkdir(); va.mkdir()
    _folder(tr, 8); _folder(va, 3)
    dls = colour_dls(tr, size=32, bs=2, valid=va, n_train=5)
    assert len(dls.train_ds) == 5 and len(dls.valid_ds) == 3


def test_imagenette_through_untar_data(shared):
    from colourgan_fastai import imagenette_dls
    dls = imagenette_dls(shared / 'data', n_train=40, n_valid=20, bs=8)
    assert len(dls.train_ds) == 40 and len(dls.valid_ds) == 20
    assert dls.one_batch()[0].shape == (8, 1, 96, 96)
