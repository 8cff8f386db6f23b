"Eval-mode settings of the colour U-Net (flip averaging, chroma gain) and colourfulness calibration."
import pytest
import torch
from torch import nn


def _L(n=3, size=32):
    return torch.rand(n, 1, size, size) * 2 - 1


def test_flip_average_is_the_mean_of_the_image_and_its_mirror_and_leaves_training_alone(tiny_learn):
    from colourgan_fastai import use_flip_average
    G, x = tiny_learn.model.eval(), _L()
    with torch.no_grad():
        plain, mirror = G(x), G(x.flip(-1)).flip(-1)
        use_flip_average(tiny_learn)
        avg = G(x)
        assert torch.allclose(avg, (plain + mirror) / 2, atol=1e-6)
        assert not torch.allclose(plain, mirror, atol=1e-4)          # so the test can tell the two apart
        assert torch.allclose(G(x.flip(-1)), avg.flip(-1), atol=1e-6)  # mirror-equivariant by construction
        G.train()
        torch.manual_seed(0); a = G(x)
        use_flip_average(tiny_learn, False); torch.manual_seed(0); b = G(x)
    assert torch.equal(a, b)                                           # the loss never sees it


def test_chroma_gain_scales_ab_in_eval_mode_within_the_output_range(tiny_learn):
    G, x = tiny_learn.model.eval(), _L()
    with torch.no_grad():
        plain = G(x)
        G.set_prediction(chroma_gain=3.)
        out = G(x)
        assert torch.allclose(out, (plain * 3).clamp(-1, 1), atol=1e-6)
        assert out.abs().max() <= 1
        G.train(); torch.manual_seed(0); a = G(x)
        G.set_prediction(chroma_gain=1.); torch.manual_seed(0); b = G(x)
    assert torch.equal(a, b)


def test_settings_refuse_a_generator_that_is_not_a_colour_unet():
    from colourgan_fastai import use_flip_average, calibrate_colourfulness
    with pytest.raises(TypeError, match='ColourUnet'): use_flip_average(nn.Conv2d(1, 2, 1))
    with pytest.raises(TypeError, match='ColourUnet'): calibrate_colourfulness(nn.Conv2d(1, 2, 1), dl=[])


def _mean_cf(G, dl, truth=False):
    from colourgan_fastai.metrics import colourfulness
    from colourgan_fastai.lab import decode_lab
    G.eval()
    with torch.no_grad():
        return torch.cat([colourfulness(decode_lab(L, ab if truth else G(L))) for L, ab in dl]).mean().item()


def test_calibration_makes_the_outputs_as_colourful_as_asked(model_file, tiny_dls):
    from colourgan_fastai import load_colourizer, calibrate_colourfulness
    learn = load_colourizer(model_file)
    G, dl = learn.model, tiny_dls.valid
    plain, truth = _mean_cf(G, dl), _mean_cf(G, dl, truth=True)
    target = 1.3 * plain                                               # more colour than the model paints
    g = calibrate_colourfulness(learn, dl, gap=truth - target, display=False)
    assert G.chroma_gain == g and g > 1
    assert _mean_cf(G, dl) == pytest.approx(target, abs=0.011)
    g2 = calibrate_colourfulness(learn, dl, gap=truth - target, display=False)   # the gain is not compounded
    assert g2 == pytest.approx(g, rel=1e-3)


def test_calibration_on_whole_photos_makes_what_colourize_gives_as_colourful_as_asked(model_file, tmp_path):
    import numpy as np
    import skimage.data
    from PIL import Image
    from colourgan_fastai import load_colourizer, calibrate_colourfulness, colourize
    from colourgan_fastai.metrics import colourfulness
    files = []
    for k, name in enumerate(('astronaut', 'coffee', 'chelsea')):        # larger than the 32 px training size
        f = tmp_path / f'{name}.png'
        Image.fromarray(getattr(skimage.data, name)()).resize((72 + 8 * k, 56)).save(f); files.append(f)
    t = lambda im: torch.from_numpy(np.asarray(im.convert('RGB'), np.float32) / 255).permute(2, 0, 1)[None]
    cf = lambda learn: float(np.mean([colourfulness(t(colourize(learn, f))).item() for f in files]))
    truth_of = lambda fs: float(np.mean([colourfulness(t(Image.open(f))).item() for f in fs]))
    truth = truth_of(files)
    learn = load_colourizer(model_file)
    target = 1.3 * cf(learn)
    g = calibrate_colourfulness(learn, gap=truth - target, photos=files, display=False)
    assert learn.model.chroma_gain == g and g > 1
    assert cf(learn) == pytest.approx(target, abs=0.05)                # as colourize paints them, whole
    Image.fromarray(skimage.data.rocket()).save(tmp_path / 'rocket.png')   # 427 x 640: over 8 render sizes, so the
    files = [tmp_path / 'rocket.png']                                      # prediction is fitted on a reduced copy
    big = load_colourizer(model_file)
    target = 1.3 * cf(big)
    calibrate_colourfulness(big, gap=truth_of(files) - target, photos=files, display=False)
    assert cf(big) == pytest.approx(target, rel=0.05)
    fresh = load_colourizer(model_file)
    with pytest.raises(ValueError, match='at least one photo'): calibrate_colourfulness(fresh, photos=[], display=False)
    assert fresh.model.chroma_gain == 1.


def test_calibration_that_cannot_reach_the_target_says_so_and_changes_nothing(model_file, tiny_dls):
    from colourgan_fastai import load_colourizer, calibrate_colourfulness
    learn = load_colourizer(model_file)
    learn.model.set_prediction(chroma_gain=1.2)
    with pytest.raises(ValueError, match='no chroma gain'):
        calibrate_colourfulness(learn, tiny_dls.valid, gap=-1000., display=False)
    with pytest.raises(ValueError, match='at least one batch'): calibrate_colourfulness(learn, [], display=False)
    assert learn.model.chroma_gain == 1.2 and not learn.model.training


def test_the_settings_are_buffers_that_save_load_and_export_carry_in_files_plain_fastai_reads(tiny_learn, tmp_path):
    from fastai.learner import load_model
    from colourgan_fastai import use_flip_average, load_colourizer
    learn = tiny_learn
    assert {'flip_average', 'chroma_gain'} <= set(learn.model.state_dict())
    learn.path = tmp_path
    use_flip_average(learn); learn.model.set_prediction(chroma_gain=1.25)
    learn.save('calibrated')
    learn.export(tmp_path / 'g.pkl')
    use_flip_average(learn, False); learn.model.set_prediction(chroma_gain=1.)
    learn.save('plain')
    learn.load('calibrated', with_opt=False)
    assert learn.model.flip_average and learn.model.chroma_gain == 1.25
    learn.load('plain', with_opt=False)                                                # a file without settings: plain predictions
    assert not learn.model.flip_average and learn.model.chroma_gain == 1.
    G = load_colourizer(tmp_path / 'g.pkl').model
    assert G.flip_average and G.chroma_gain == 1.25
    fresh = type(learn.model)(learn.model[0], learn.model.img_size)       # fastai's own loader, no ColourLearner
    load_model(tmp_path / 'models' / 'calibrated.pth', fresh, None, with_opt=False)
    assert fresh.flip_average and fresh.chroma_gain == 1.25


def test_onnx_export_keeps_flip_averaging_and_the_gain(model_file, tmp_path):
    import numpy as np
    from colourgan_fastai import load_colourizer, use_flip_average, export_onnx
    ort = pytest.importorskip('onnxruntime')
    learn = load_colourizer(model_file)
    use_flip_average(learn); learn.model.set_prediction(chroma_gain=1.5)
    sess = ort.InferenceSession(str(export_onnx(learn, tmp_path / 'g.onnx')))
    x = torch.randn(2, 1, 48, 64)
    with torch.no_grad():
        ref = learn.model.eval()(x).numpy()
        use_flip_average(learn, False); learn.model.set_prediction(chroma_gain=1.)
        assert np.abs(learn.model(x).numpy() - ref).max() > 1e-3          # the settings change the output
    assert np.abs(sess.run(None, {'L': x.numpy()})[0] - ref).max() <= 1e-4
