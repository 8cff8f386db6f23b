"""Colour hints: a hinted U-Net (L + hint ab + mask), hints sampled from the truth for training, hinted metric
columns, and a person's points in colourize, the folder job, the command line and ONNX."""
import json
from pathlib import Path

import numpy as np
import pytest
import skimage.color as skc
import skimage.data
import torch
from PIL import Image

from colourgan_fastai import colour_learner, colourize, colourize_folder, load_colourizer, colour_metrics
from colourgan_fastai.hints import sample_hints, hint_maps, parse_colour, HintSampler, read_hints_file
from colourgan_fastai.lab import rgb_to_lab, lab_to_rgb


def _ab_near(img, x, y, r=2):
    "Mean ab (CIE Lab) of the picture around (x, y)."
    a = np.asarray(img.convert('RGB'))[y - r:y + r + 1, x - r:x + r + 1] / 255.
    return skc.rgb2lab(a)[..., 1:].mean((0, 1))


def _cat(tmp_path, name='cat.png'):
    p = tmp_path / name
    Image.fromarray(skimage.data.chelsea()[:120, :160]).save(p)
    return p


def test_hints_are_sampled_as_in_the_paper():
    ab = torch.rand(4000, 2, 24, 24) * 2 - 1
    hint, mask = sample_hints(ab, generator=torch.Generator().manual_seed(0))
    none = (mask.flatten(1).sum(1) == 0).float().mean().item()
    assert abs(none - 1 / 8) < 0.02                               # geometric, p = 1/8: one image in eight gets none
    assert hint.shape == (4000, 2, 24, 24) and mask.shape == (4000, 1, 24, 24)
    assert ((hint != 0).any(1, keepdim=True) <= (mask > 0)).all()   # no hint colour outside the mask
    g = torch.Generator().manual_seed(1)                           # one point: a square patch holding its mean ab
    hint, mask = sample_hints(ab[:200], n=1, generator=g)
    sides = []
    for k in range(200):
        ys, xs = mask[k, 0].nonzero(as_tuple=True)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert h == w and len(ys) == h * w
        sides.append(int(h))
        patch = ab[k, :, ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        assert torch.allclose(hint[k, :, ys[0], xs[0]], patch.mean((1, 2)), atol=1e-5)
    assert set(sides) == set(range(1, 10))                         # 1 to 9 px
    a = sample_hints(ab[:50], 5, generator=torch.Generator().manual_seed(3))
    b = sample_hints(ab[:50], 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])     # seeded: repeatable


def test_a_new_hinted_unet_predicts_what_the_hint_free_one_predicts(tiny_dls):
    plain = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False).model.eval()
    hinted = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, hints=True).model.eval()
    missing = hinted.load_state_dict(plain.state_dict(), strict=False).missing_keys
    n_blocks = sum(type(m).__name__ == 'UnetBlock' for m in hinted.layers)
    assert sorted(missing) == ['hint_conv.weight', 'hint_mid.weight', 'hint_out.weight'] + \
        [f'hint_up.{i}.weight' for i in range(n_blocks)]
    L_, ab = tiny_dls.one_batch()
    with torch.no_grad():
        assert torch.equal(hinted(L_, *sample_hints(ab)), plain(L_))
        assert torch.equal(hinted(L_), plain(L_))
        with pytest.raises(ValueError, match='trained without hints'): plain(L_, *sample_hints(ab))
        for conv in (hinted.hint_conv, hinted.hint_mid, hinted.hint_out, *hinted.hint_up):
            torch.nn.init.normal_(conv.weight, std=0.5)
        grey_hint = (torch.zeros_like(ab), torch.zeros_like(L_))
        grey_hint[1][..., 10:14, 10:14] = 1
        assert torch.equal(hinted(L_, torch.zeros_like(ab), torch.zeros_like(L_)), hinted(L_))   # no mask: no hint
        assert not torch.equal(hinted(L_, *grey_hint), hinted(L_))   # the mask makes a grey hint a real hint


def test_training_batches_get_hints_and_validation_gets_none_and_hinted_columns(tiny_dls):
    from fastai.callback.core import Callback
    seen = []

    class Spy(Callback):
        order = 0
        def before_batch(self): seen.append((self.training, len(self.xb)))

    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, hints=True, metrics=colour_metrics())
    assert any(isinstance(cb, HintSampler) for cb in learn.cbs)
    learn.fit(1, 3e-3, cbs=Spy())
    assert {n for t, n in seen if t} == {3} and {n for t, n in seen if not t} == {1}
    m = learn.model
    assert all(c.weight.abs().sum() > 0 for c in (m.hint_conv, m.hint_mid, m.hint_out, *m.hint_up))   # all trained
    names = learn.recorder.metric_names
    assert 'psnr' in names and 'psnr_10hints' in names and 'delta_colourfulness_10hints' in names
    first, second = learn.validate(), learn.validate()
    assert first == second                                         # the hinted columns use the same seeded hints
    calls = []
    hook = learn.model.register_forward_pre_hook(lambda mod, args: calls.append(len(args)))
    learn.validate()
    hook.remove()
    n_batches = len(learn.dls.valid)
    assert calls.count(3) == n_batches and calls.count(1) == n_batches   # one hinted pass per batch for 4 columns
    from colourgan_fastai.hints import WithHints
    alone = [WithHints(m) for m in colour_metrics()]                       # each column with a pass of its own
    learn.metrics = alone
    assert [float(v) for v in learn.validate()[1:]] == pytest.approx([float(v) for v in first[-len(alone):]], rel=1e-6)


def test_hints_work_in_the_gan_and_colour_recipes(tiny_dls):
    from colourgan_fastai import Recipe, train
    for recipe in (Recipe.seed().replace(epochs=1, gan_epochs=1),
                   Recipe.photos().replace(epochs=1, colour_epochs=1, calibrate=None, flip_average=False)):
        learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, hints=True)
        before = learn.model.hint_out.weight.clone()
        train(learn, recipe, say=lambda *a: None)
        assert not torch.equal(before, learn.model.hint_out.weight), recipe.name
        assert np.isfinite(learn.recorder.values[-1][0])


def test_colours_and_points_are_checked():
    assert parse_colour('#ff0000').tolist() == [1., 0., 0.]
    assert parse_colour((0, 255, 0)).tolist() == [0., 1., 0.]
    assert parse_colour('blue').tolist() == [0., 0., 1.]
    for bad in ('#ff000', 'not a colour', (1, 2), (0, 0, 300)):
        with pytest.raises(ValueError, match='colour'): parse_colour(bad)


def test_a_point_becomes_ab_at_the_photos_own_lightness():
    L_render = torch.full((16, 16), 20.)                           # a dark photo
    hint, mask = hint_maps([(31, 0, '#ff0000')], L_render, (32, 32))
    assert mask.sum() == 6 and mask[0, 0, 14:].all()                # a 3 x 3 square cut by the photo's edge
    lab = torch.cat([torch.full((1, 1, 1), 20.), hint[:, :1, 15:16] * 110])
    rgb = lab_to_rgb(lab)
    assert torch.allclose(rgb_to_lab(rgb), lab, atol=0.5)           # in gamut at L 20: no clipping needed
    assert rgb[0] > 3 * rgb[1:].max()                                 # still red, only darker
    grey, gmask = hint_maps([(5, 5, '#808080')], L_render, (32, 32))
    assert gmask.sum() == 9 and grey.abs().max() < 1e-3                # a grey hint: ab 0, but a hint


def test_colourize_follows_a_point_where_it_is_put(hint_model_file, tmp_path):
    learn = load_colourizer(hint_model_file)
    src = _cat(tmp_path)
    target = skc.rgb2lab(np.array([[[1., 0, 0]]]))[0, 0, 1:]
    plain = colourize(learn, src)
    red = colourize(learn, src, hints=[(40, 30, '#ff0000')])
    assert np.linalg.norm(_ab_near(red, 40, 30) - target) < 0.8 * np.linalg.norm(_ab_near(plain, 40, 30) - target)
    far = np.abs(np.asarray(red, float) - np.asarray(plain, float))[80:, 110:].mean()
    near = np.abs(np.asarray(red, float) - np.asarray(plain, float))[27:34, 37:44].mean()
    assert far < near / 2                                           # it acts where it is put
    assert np.array_equal(np.asarray(colourize(learn, src, hints=[])), np.asarray(plain))
    with pytest.raises(ValueError, match=r'cat.png.*\(160, 5\) is outside the 160x120 photo'):
        colourize(learn, src, hints=[(160, 5, '#ff0000')])


def test_a_hint_free_model_refuses_hints(model_file, tmp_path):
    with pytest.raises(ValueError, match='trained without hints'):
        colourize(model_file, _cat(tmp_path), hints=[(1, 1, '#ff0000')])


def test_folder_and_command_line_hints(hint_model_file, tmp_path, capsys):
    from colourgan_fastai.cli import main, EXIT_ERROR
    src = tmp_path / 'in'; (src / 'sub').mkdir(parents=True)
    _cat(src / 'sub'); _cat(src, 'other.png')
    res = colourize_folder(hint_model_file, src, tmp_path / 'a', hints={'sub/cat.png': [(40, 30, '#ff0000')]},
                           display=False)
    assert len(res['written']) == 2
    plain = colourize(hint_model_file, src / 'sub' / 'cat.png')
    assert not np.array_equal(np.asarray(Image.open(tmp_path / 'a' / 'sub' / 'cat.png')), np.asarray(plain))
    alone = np.asarray(colourize(hint_model_file, src / 'other.png'), float)    # batched beside a hinted photo:
    assert np.abs(np.asarray(Image.open(tmp_path / 'a' / 'other.png'), float) - alone).max() <= 1   # as if alone
    hints = tmp_path / 'hints.json'
    hints.write_text(json.dumps({'in/sub/cat.png': [{'x': 40, 'y': 30, 'colour': '#ff0000'}]}))
    assert read_hints_file(hints) == {'in/sub/cat.png': [(40, 30, '#ff0000')]}
    assert main(['colourize', str(src), '-o', str(tmp_path / 'b'), '--model', str(hint_model_file),
                 '--hints', str(hints)]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / 'b' / 'in' / 'sub' / 'cat.png')),
                          np.asarray(Image.open(tmp_path / 'a' / 'sub' / 'cat.png')))
    capsys.readouterr()
    for text, why in (('{"cat.png": [[40, 30, "#ff0000"]', 'is not valid JSON'),
                      ('{"in/sub/cat.png": [[400, 30, "#ff0000"]]}', r'cat.png in .*hints.json.*\(400, 30\) is outside'),
                      ('{"dog.png": [[4, 3, "#ff0000"]]}', "'dog.png' is not one of the images")):
        hints.write_text(text)
        assert main(['colourize', str(src), '-o', str(tmp_path / 'c'), '--model', str(hint_model_file),
                     '--hints', str(hints)]) == EXIT_ERROR
        err = capsys.readouterr().err
        assert 'hints.json' in err and __import__('re').search(why, err), err
    assert not (tmp_path / 'c').exists()                               # checked before any work


def test_onnx_takes_the_hints_and_matches_torch(hint_model_file, tmp_path):
    ort = pytest.importorskip('onnxruntime')
    from colourgan_fastai import export_onnx
    learn = load_colourizer(hint_model_file)
    sess = ort.InferenceSession(str(export_onnx(learn, tmp_path / 'h.onnx')))
    assert [i.name for i in sess.get_inputs()] == ['L', 'hint_ab', 'hint_mask']
    L_ = torch.rand(2, 1, 40, 56) * 2 - 1
    hint, mask = sample_hints(torch.rand(2, 2, 40, 56) - 0.5, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(): want = learn.model.eval()(L_, hint, mask).numpy()
    got = sess.run(None, {'L': L_.numpy(), 'hint_ab': hint.numpy(), 'hint_mask': mask.numpy()})[0]
    assert np.abs(got - want).max() < 1e-4


def test_the_photo_figure_gains_a_panel_with_the_hints_drawn(hint_model_file, tmp_path):
    from colourgan_fastai.figures import comparison_figure
    learn, photos = load_colourizer(hint_model_file), {'cat': _cat(tmp_path)}
    plain = Image.open(comparison_figure(learn, photos, tmp_path / 'a.png'))
    fig = np.asarray(Image.open(comparison_figure(learn, photos, tmp_path / 'b.png', hints={'cat': [(40, 30, '#ff0000')]})))
    assert fig.shape[1] == plain.size[0] + 160 + 6 == 4 * 160 + 3 * 6  # one more full-resolution panel
    panel = fig[32:32 + 120, 2 * (160 + 6):2 * (160 + 6) + 160]          # below the two label lines, third panel
    assert tuple(panel[30, 40]) == (255, 0, 0)                           # the point, drawn in its colour
    from colourgan_fastai.figures import _grey_of
    grey = _grey_of(np.asarray(Image.open(photos['cat'])))               # the figure colourises the grey print
    want = np.asarray(colourize(learn, grey, hints=[(40, 30, '#ff0000')]))
    assert np.array_equal(panel[:, 100:], want[:, 100:])                 # away from the marker: the hinted result


def test_the_photo_figure_script_draws_the_photos_a_hints_file_names(hint_model_file, tmp_path):
    import runpy
    main = runpy.run_path(str(Path(__file__).parents[1] / 'examples/photo_figure.py'), run_name='x')['main']
    cat = Image.open(_cat(tmp_path))
    (tmp_path / 'photos/cls').mkdir(parents=True)
    for name in ('a', 'b', 'c'): cat.save(tmp_path / f'photos/cls/{name}.png')
    spec = tmp_path / 'hints.json'
    spec.write_text(json.dumps({'cls/b': [[40, 30, '#ff0000']]}))
    out = main(['--model', str(hint_model_file), '--photos', str(tmp_path / 'photos'), '--hints', str(spec),
                '--out', str(tmp_path / 'fig.png')])
    assert Image.open(out).size[0] == 4 * 160 + 3 * 6                    # only the named photo, with its hint panel
    spec.write_text(json.dumps({'cls/zzz': [[40, 30, '#ff0000']]}))
    with pytest.raises(SystemExit, match='cls/zzz'):
        main(['--model', str(hint_model_file), '--photos', str(tmp_path / 'photos'), '--hints', str(spec)])


def test_a_hinted_model_exported_before_the_decoder_block_hints_loads_and_follows_hints(tiny_dls, tmp_path):
    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, hints=True)
    m = learn.model
    for layer in m.layers:                                          # the earlier hinted U-Net: no hint_up, and its
        layer._forward_hooks.clear()                                # middle hook pickled by this method's name
    m.layers[3].register_forward_hook(m._add_hints_mid)
    del m.hint_up
    with torch.no_grad(): torch.nn.init.normal_(m.hint_mid.weight, std=0.5)
    L_, ab = tiny_dls.one_batch()
    hints = sample_hints(ab, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(): want = m.eval()(L_, *hints)
    learn.export(tmp_path / 'earlier.pkl')
    old = load_colourizer(tmp_path / 'earlier.pkl').model.eval()
    with torch.no_grad(): got, unhinted = old(L_, *hints), old(L_)
    assert torch.allclose(got, want, atol=1e-4)                      # it loads and predicts as it did
    assert (got - unhinted).abs().max() > 0.01                       # its hints still act
