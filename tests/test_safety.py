"""A photo tool must never lose a photo or mislead: inputs are never written, collisions are refused up front,
every frame is colourised, files get normal permissions, bad arrays get clear errors, CLI errors are one line."""
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.color as skc
import skimage.data
from PIL import Image

from colourgan_fastai import colourize, colourize_folder, load_colourizer

from colourgan_fastai.images import load_rgb, image_array
from colourgan_fastai.cli import main, EXIT_ERROR, EXIT_SOME_FAILED


@pytest.fixture(scope='module')
def learn(model_file): return load_colourizer(model_file)


def _grey(i=0, h=40, w=50): return skimage.data.camera()[i * 40:i * 40 + h, :w]
def _save(p, arr=None, i=0):
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_grey(i) if arr is None else arr).save(p)
    return p
def _L(im): return skc.rgb2lab(np.asarray(im.convert('RGB')) / 255.)[..., 0]
def _cli(*args, model): return main(['colourize', *map(str, args), '--model', str(model)])


# ------------------------------------------------------------------ data loss and silent skips
def test_an_input_in_the_output_folder_is_never_written_even_with_overwrite(model_file, tmp_path, capsys):
    x, original = _save(tmp_path / 'a' / 'x.png', i=0), _save(tmp_path / 'b' / 'x.png', i=1)
    before = original.read_bytes()
    assert _cli(x, tmp_path / 'b', '-o', tmp_path / 'b', '--overwrite', model=model_file) == EXIT_ERROR
    err = capsys.readouterr().err
    assert 'inputs are never written' in err and len(err.strip().splitlines()) == 1
    assert original.read_bytes() == before and sorted(os.listdir(tmp_path / 'b')) == ['x.png']


def test_two_inputs_with_one_output_name_are_refused_up_front(model_file, tmp_path, capsys):
    a, b = _save(tmp_path / 'x' / 'photo.jpg'), _save(tmp_path / 'y' / 'photo.jpg', i=1)
    assert _cli(a, b, '-o', tmp_path / 'out', model=model_file) == EXIT_ERROR
    err = capsys.readouterr().err
    assert str(a) in err and str(b) in err and not (tmp_path / 'out').exists()
    assert _cli(a, b, '-o', tmp_path / 'out', '--overwrite', model=model_file) == EXIT_ERROR
    # two folders both named `photos`
    _save(tmp_path / 'p1' / 'photos' / 'k.png'); _save(tmp_path / 'p2' / 'photos' / 'k.png', i=1)
    assert _cli(tmp_path / 'p1' / 'photos', tmp_path / 'p2' / 'photos', '-o', tmp_path / 'out',
                model=model_file) == EXIT_ERROR
    assert 'same output' in capsys.readouterr().err and not (tmp_path / 'out').exists()
    # a JPEG and a PNG of one name in one folder both become PNG: refused, not one lost
    _save(tmp_path / 'z' / 'q.jpg'); _save(tmp_path / 'z' / 'q.png', i=1)
    with pytest.raises(ValueError, match='same output'): colourize_folder(model_file, tmp_path / 'z', tmp_path / 'o')
    assert not (tmp_path / 'o').exists()


def test_photos_with_no_or_unusual_extensions_are_colourised_and_other_files_reported(model_file, learn, tmp_path,
                                                                                    capsys, monkeypatch):
    "A scanner's `scan0001` (no extension) and a `.tga` are photos too; a README beside them is named, not dropped."
    src = tmp_path / 'in'
    _save(src / 'a.png'); _save(src / 'sub' / 'pic.tga', i=1)
    Image.fromarray(_grey(2)).save(src / 'scan0001', format='JPEG')
    (src / 'notes.txt').write_text('not a photo'); (src / 'sub' / 'data.bin').write_bytes(b'\x00' * 64)
    res = colourize_folder(learn, src, tmp_path / 'out', display=False)
    assert sorted(p.relative_to(tmp_path / 'out').as_posix() for p in res['written']) == \
        ['a.png', 'scan0001.png', 'sub/pic.png']
    assert Image.open(tmp_path / 'out' / 'scan0001.png').size == (50, 40) and not res['failed']
    assert sorted(p.name for p in res['not_images']) == ['data.bin', 'notes.txt']
    # the command line says so too
    assert _cli(src, '-o', tmp_path / 'cli', model=model_file) == 0
    out = capsys.readouterr().out
    assert 'colourised 3 file(s)' in out and 'left alone 2 file(s) that are not images' in out and 'notes.txt' in out
    # a folder holding no image at all is an error that says what it did find
    only_text = tmp_path / 'docs'; only_text.mkdir(); (only_text / 'r.txt').write_text('x')
    with pytest.raises(ValueError, match=r'no image or film.*1 other file'): colourize_folder(learn, only_text, tmp_path / 'o')
    # a photo too large for Pillow's bomb check is still a photo (its refusal is reported), not one of the other files
    from colourgan_fastai.images import folder_images
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 500)                     # 50 x 40 px is now over twice the limit
    photos, others = folder_images(src)
    assert 'scan0001' in [f.name for f in photos] and 'scan0001' not in [f.name for f in others]


def test_lossy_inputs_are_written_losslessly_so_lightness_is_kept(learn, tmp_path):
    src = _save(tmp_path / 'in' / 'p.jpg', skimage.data.coffee()[:64, :96])
    res = colourize_folder(learn, src, tmp_path / 'out', display=False)
    assert [p.name for p in res['written']] == ['p.png']
    assert np.abs(_L(Image.open(tmp_path / 'out' / 'p.png')) - _L(Image.open(src))).max() < 1.0
    res = colourize_folder(learn, src, tmp_path / 'out_jpg', fmt='jpg', display=False)
    assert [p.name for p in res['written']] == ['p.jpg']                 # asked for: lossy, L only close


def test_every_frame_of_animated_gifs_and_multipage_tiffs_is_colourised(learn, tmp_path):
    frames = [Image.fromarray(np.dstack([_grey(i)] * 3)) for i in range(3)]
    frames[0].save(tmp_path / 'anim.gif', save_all=True, append_images=frames[1:], duration=70, loop=0)
    frames[0].save(tmp_path / 'pages.tif', save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match='3 frames'): colourize(learn, tmp_path / 'anim.gif')
    for name, out_name in (('anim.gif', 'anim.png'), ('pages.tif', 'pages.tif')):
        res = colourize_folder(learn, tmp_path / name, tmp_path / 'out', display=False)
        assert [p.name for p in res['written']] == [out_name]
        with Image.open(tmp_path / 'out' / out_name) as im:
            assert getattr(im, 'n_frames', 1) == 3
            for k in range(3):
                im.seek(k)
                src = Image.open(tmp_path / name); src.seek(k)
                assert np.abs(_L(im) - _L(src)).max() < 1.0, (name, k)
    with Image.open(tmp_path / 'out' / 'anim.png') as im: assert im.info.get('duration') == 70


def test_outputs_get_umask_permissions_and_stale_temporary_files_are_removed(learn, tmp_path):
    src = _save(tmp_path / 'in' / 'p.png')
    out = tmp_path / 'out'; out.mkdir()
    stale = out / '.p.png.abc123.colourgan-tmp'; stale.write_bytes(b'half an image')   # a killed earlier save
    old = os.umask(0o027)
    try: colourize_folder(learn, src, out, display=False)
    finally: os.umask(old)
    assert (out / 'p.png').stat().st_mode & 0o777 == 0o640
    assert not stale.exists() and sorted(os.listdir(out)) == ['p.png']


# ------------------------------------------------------------------ one image rule for training and inference
def test_every_integer_dtype_of_8_bit_values_reads_like_uint8_in_training_and_inference(learn):
    g = _grey()
    ref = np.asarray(colourize(learn, g), float)
    for dt in (np.int16, np.int32, np.int64, np.uint32):
        assert np.abs(np.asarray(colourize(learn, g.astype(dt)), float) - ref).max() <= 1, dt
        assert np.array_equal(np.asarray(load_rgb(g.astype(dt))), np.asarray(load_rgb(g))), dt
    f = Image.fromarray(g).convert('F')                                  # PIL's float mode: 0-255 scale
    assert np.abs(np.asarray(colourize(learn, f), float) - ref).max() <= 1
    assert np.array_equal(np.asarray(load_rgb(f)), np.asarray(load_rgb(g)))
    assert np.abs(np.asarray(colourize(learn, g / 255.), float) - ref).max() <= 1


@pytest.mark.parametrize('bad, match', [
    (np.full((8, 8), 200., np.float32), 'divide an 8-bit image by 255'),
    (np.full((8, 8), 4000, np.int32), '8-bit values'),
    (np.full((8, 8), -3, np.int64), '8-bit values'),
])
def test_ambiguous_value_ranges_are_refused_on_both_sides(learn, bad, match):
    with pytest.raises(ValueError, match=match): colourize(learn, bad)
    with pytest.raises(ValueError, match=match): load_rgb(bad)


def test_one_layout_rule_for_both_sides(learn):
    g = np.dstack([_grey()] * 3)
    chw = np.ascontiguousarray(g.transpose(2, 0, 1))
    assert np.array_equal(np.asarray(colourize(learn, chw)), np.asarray(colourize(learn, g)))
    assert np.array_equal(np.asarray(load_rgb(chw)), np.asarray(load_rgb(g)))
    tiny = np.zeros((3, 4, 4), np.uint8)                                # (C,H,W) or (H,W,RGBA)? refuse
    with pytest.raises(ValueError, match='ambiguous'): colourize(learn, tiny)
    with pytest.raises(ValueError, match='ambiguous'): load_rgb(tiny)
    assert image_array(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 4)


def test_nan_pixels_are_refused_not_turned_black(learn):
    x = np.random.RandomState(0).rand(16, 16).astype(np.float32)
    x[3, 4] = np.nan
    with pytest.raises(ValueError, match='1 NaN'): colourize(learn, x)
    with pytest.raises(ValueError, match='NaN'): load_rgb(x)


def test_memory_is_bounded_for_extreme_aspect_ratios(learn):
    from colourgan_fastai.inference import _render_shape
    for w, h in ((5000, 3), (3, 5000), (100_000, 64), (640, 480)):
        H, W = _render_shape(w, h, 64)
        assert H * W <= 16 * 64 ** 2 and H % 8 == 0 and W % 8 == 0, (w, h, H, W)
    assert _render_shape(640, 480, 64) == (64, 88)                       # normal photos: short side = render size
    strip = np.tile(_grey(h=3), (1, 100))[:, :5000]
    out = colourize(learn, strip)
    assert out.size == (5000, 3)


# ------------------------------------------------------------------ clear errors
def test_cli_errors_are_one_line_with_their_own_exit_code(model_file, tmp_path, capsys, monkeypatch):
    import torch
    good = _save(tmp_path / 'in' / 'a.png')
    (tmp_path / 'file').write_text('x')
    cases = [(['-o', tmp_path / 'file'], 'existing file'),
             (['-o', tmp_path / 'o', '--bs', '0'], '--bs'),
             (['-o', tmp_path / 'o', '--bs', '-3'], '--bs'),
             (['-o', tmp_path / 'o', '--render-size', '0'], '--render-size'),
             (['-o', tmp_path / 'o', '--device', 'quantum'], 'unknown device'),
             ([tmp_path / 'missing.png', '-o', tmp_path / 'o'], 'missing.png')]
    if not torch.cuda.is_available(): cases.append((['-o', tmp_path / 'o', '--device', 'cuda'], 'no usable CUDA'))
    for extra, msg in cases:
        assert _cli(good, *extra, model=model_file) == EXIT_ERROR, extra
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, (extra, err)
        assert not (tmp_path / 'o').exists()                             # checked before any work
    real_access = os.access
    monkeypatch.setattr(os, 'access', lambda p, m: False if str(p).startswith(str(tmp_path / 'ro')) else real_access(p, m))
    (tmp_path / 'ro').mkdir()
    assert _cli(good, '-o', tmp_path / 'ro', model=model_file) == EXIT_ERROR
    assert 'not writable' in capsys.readouterr().err
    (tmp_path / 'in' / 'broken.png').write_bytes(b'\x89PNG nonsense')
    with pytest.warns(UserWarning, match='broken.png'):
        assert _cli(tmp_path / 'in', '-o', tmp_path / 'o2', model=model_file) == EXIT_SOME_FAILED
    assert (tmp_path / 'o2' / 'in' / 'a.png').exists()


def test_a_normal_cli_run_prints_no_warnings(model_file, tmp_path):
    _save(tmp_path / 'in' / 'a.jpg')
    r = subprocess.run([sys.executable, '-m', 'colourgan_fastai.cli', 'colourize', str(tmp_path / 'in'), '-o',
                        str(tmp_path / 'out'), '--model', str(model_file)], capture_output=True, text=True)
    assert r.returncode == 0 and 'colourised 1 file(s)' in r.stdout
    assert 'Warning' not in r.stderr and 'warn' not in r.stderr.lower(), r.stderr
