
import numpy as np
import pytest
import torch
from PIL import Image
import skimage.color as skc
import skimage.data

from colourgan_fastai import colourize, colourize_folder, load_colourizer, colourize_many
from colourgan_fastai.cli import main


@pytest.fixture(scope='module')
def learn(model_file): return load_colourizer(model_file)


def _L(im): return skc.rgb2lab(np.asarray(im.convert('RGB')) / 255.)[..., 0]


def test_output_has_the_input_size_and_its_lightness(learn):
    img = Image.fromarray(skimage.data.coffee()[:101, :157])
    for rs in (None, 64):
        out = colourize(learn, img, render_size=rs)
        assert out.size == img.size and out.mode == 'RGB'
        assert np.abs(_L(out) - _L(img)).max() < 1.0          # 8-bit rounding only
    assert np.abs(skc.rgb2lab(np.asarray(out) / 255.)[..., 1:]).mean() > 0.5   # it is not grey


def test_accepts_paths_arrays_grey_palette_16bit_rgba_and_exif(learn, tmp_path):
    grey = skimage.data.camera()[:60, :80]
    a = colourize(learn, grey)                                   # numpy grey
    assert a.size == (80, 60)
    assert np.abs(_L(a) - skc.rgb2lab(np.dstack([grey] * 3) / 255.)[..., 0]).max() < 1.0
    Image.fromarray(grey).save(tmp_path / 'g.png')
    assert np.array_equal(np.asarray(colourize(learn, tmp_path / 'g.png')), np.asarray(a))   # path == array
    p16 = Image.fromarray((grey.astype(np.uint16) * 257)); p16.save(tmp_path / 'g16.png')
    assert np.abs(np.asarray(colourize(learn, tmp_path / 'g16.png'), float) - np.asarray(a, float)).max() <= 2
    rgba = np.dstack([np.dstack([grey] * 3), np.full_like(grey, 100)])
    out = colourize(learn, Image.fromarray(rgba))
    assert out.mode == 'RGBA' and (np.asarray(out)[..., 3] == 100).all()
    pal = Image.fromarray(np.dstack([grey] * 3)).convert('P')
    assert colourize(learn, pal).size == (80, 60)
    exif = Image.Exif(); exif[0x0112] = 6
    Image.fromarray(np.dstack([grey] * 3)).save(tmp_path / 'rot.jpg', exif=exif)
    assert colourize(learn, tmp_path / 'rot.jpg').size == (60, 80)


def test_tiny_and_very_long_images(learn, monkeypatch):
    assert colourize(learn, np.full((1, 1), 128, np.uint8)).size == (1, 1)
    import colourgan_fastai.inference as inf
    monkeypatch.setattr(inf, 'STRIP_PIXELS', 100_000)          # force several strips
    long = np.tile(skimage.data.camera()[:48, :500], (1, 20))   # 10,000 px wide
    out = colourize(learn, long)
    assert out.size == (10_000, 48)
    assert np.abs(_L(out) - skc.rgb2lab(np.dstack([long] * 3) / 255.)[..., 0]).max() < 1.0


def test_batched_equals_one_by_one(learn):
    imgs = [skimage.data.camera()[:64, :96], skimage.data.camera()[100:164, :96], skimage.data.camera()[:50, :50]]
    many = colourize_many(learn, imgs, bs=2)
    for im, out in zip(imgs, many):
        assert np.abs(np.asarray(colourize(learn, im), float) - np.asarray(out, float)).max() <= 1


class _RingTint(torch.nn.Module):
    "A colouriser with only an edge effect: it tints the outermost 2 pixels of whatever it is given red (a = +40)."
    def __init__(self): super().__init__(); self.unused = torch.nn.Parameter(torch.zeros(1))
    def forward(self, x):
        ab = torch.zeros(x.shape[0], 2, *x.shape[2:])
        ab[..., :2, :] = ab[..., -2:, :] = ab[..., :, :2] = ab[..., :, -2:] = 40 / 110
        return ab


def test_network_edge_effects_stay_outside_the_photo(tiny_dls, monkeypatch):
    """A render of another shape than the training size is reflect-padded and the border cropped off: a network's own
    edge tint never reaches the photo."""
    from fastai.learner import Learner
    import colourgan_fastai.inference as inf
    fake = Learner(tiny_dls, _RingTint(), loss_func=torch.nn.L1Loss())
    photo = skimage.data.camera()[:96, :128]
    chroma = lambda im: np.abs(skc.rgb2lab(np.asarray(im) / 255.)[..., 1:]).max()
    assert inf._border(96, 128) == 16 and inf._border(32, 32) == 8 and inf._border(8, 40) == 0
    assert inf._border(32, 32, (32, 32)) == 0 and inf._border(96, 128, (96, 96)) == 16     # none at the training size
    assert chroma(colourize(fake, photo, render_size=96)) < 1            # grey: the tinted ring was cropped off
    monkeypatch.setattr(inf, '_border', lambda h, w, size=None: 0)       # without the border: a red frame
    framed = skc.rgb2lab(np.asarray(colourize(fake, photo, render_size=96)) / 255.)[..., 1]
    assert framed[0].mean() > 20 and np.abs(framed[20:-20, 20:-20]).max() < 1


def _tree(root):
    (root / 'sub').mkdir(parents=True)
    for i, p in enumerate(['a.jpg', 'sub/b.png', 'sub/c.png']):
        Image.fromarray(skimage.data.camera()[i * 30:i * 30 + 40, :50]).save(root / p)
    return root


def test_colourize_folder_keeps_paths_skips_existing_and_reports_bad_files(learn, tmp_path):
    src = _tree(tmp_path / 'in')
    (src / 'sub' / 'broken.png').write_bytes(b'\x89PNG garbage')
    dst = tmp_path / 'out'
    with pytest.warns(UserWarning, match='broken.png'):
        res = colourize_folder(learn, src, dst, display=False)
    assert sorted(p.relative_to(dst).as_posix() for p in res['written']) == ['a.png', 'sub/b.png', 'sub/c.png']
    assert [f.name for f, _ in res['failed']] == ['broken.png']
    assert Image.open(dst / 'sub' / 'b.png').size == (50, 40)
    assert not list(dst.rglob('*tmp'))                           # atomic writes leave nothing behind
    before = (dst / 'a.png').stat().st_mtime_ns
    with pytest.warns(UserWarning):
        res2 = colourize_folder(learn, src, dst, display=False)
    assert len(res2['skipped']) == 3 and not res2['written'] and (dst / 'a.png').stat().st_mtime_ns == before
    with pytest.warns(UserWarning):
        res3 = colourize_folder(learn, src, dst, overwrite=True, display=False)
    assert len(res3['written']) == 3


def test_colourize_folder_never_touches_inputs(learn, tmp_path):
    src = _tree(tmp_path / 'in')
    with pytest.raises(ValueError, match='input folder'): colourize_folder(learn, src, src, display=False)
    inner = src / 'coloured'
    colourize_folder(learn, src, inner, display=False)
    res = colourize_folder(learn, src, inner, display=False)       # its own outputs are not inputs
    assert len(res['skipped']) == 3 and not res['failed']
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no image or film'): colourize_folder(learn, tmp_path / 'empty', tmp_path / 'o')


def test_bad_model_files(tmp_path, tiny_dls):
    with pytest.raises(FileNotFoundError): load_colourizer(tmp_path / 'missing.pkl')
    (tmp_path / 'junk.pkl').write_bytes(b'junk')
    with pytest.raises(ValueError, match='not a model'): load_colourizer(tmp_path / 'junk.pkl')
    from fastai.learner import Learner
    Learner(tiny_dls, torch.nn.Conv2d(1, 3, 1), loss_func=torch.nn.L1Loss()).export(tmp_path / 'rgb.pkl')
    with pytest.raises(ValueError, match='not a colourizer'): load_colourizer(tmp_path / 'rgb.pkl')


def test_cli_colourize_and_onnx_export(model_file, tmp_path, capsys):
    src = _tree(tmp_path / 'in')
    assert main(['colourize', str(src), str(src / 'a.jpg'), '-o', str(tmp_path / 'out'), '--model', str(model_file)]) == 0
    assert (tmp_path / 'out' / 'in' / 'sub' / 'c.png').exists() and (tmp_path / 'out' / 'a.png').exists()
    assert 'colourised 4 file(s)' in capsys.readouterr().out
    assert main(['colourize', str(src), '-o', str(tmp_path / 'o2'), '--model', str(tmp_path / 'nope.pkl')]) == 2
    assert main(['colourize', str(src / 'a.jpg'), '-o', str(tmp_path / 'flip'), '--model', str(model_file),
                 '--flip-average']) == 0                  # the mean of the photo's and its mirror image's colours
    a, f = (np.asarray(Image.open(tmp_path / d / 'a.png'), np.int16) for d in ('out', 'flip'))
    assert a.shape == f.shape and np.abs(a - f).max() > 0
    ort = pytest.importorskip('onnxruntime')
    assert main(['export', '--model', str(model_file), '--onnx', str(tmp_path / 'g.onnx')]) == 0
    sess = ort.InferenceSession(str(tmp_path / 'g.onnx'))
    G = load_colourizer(model_file).model.eval()
    for shape in [(2, 1, 32, 32), (1, 1, 48, 64)]:
        x = torch.randn(*shape)
        with torch.no_grad(): ref = G(x).numpy()
        assert np.abs(sess.run(None, {'L': x.numpy()})[0] - ref).max() <= 1e-4


def test_at_the_training_size_colourize_scores_what_the_models_forward_pass_scores(learn, shared):
    """CIFAR-10 test images at the training size: colourize() gives the model's forward pass (the pixels, but for
    8-bit rounding and the gamut fit), and scores as well as the forward pass does in validation."""
    from colourgan_fastai import resnet20_cifar
    from colourgan_fastai.images import load_rgb
    from colourgan_fastai.lab import encode_lab, decode_lab, lab_to_rgb_in_gamut
    from colourgan_fastai.metrics import psnr, ssim, colourfulness
    files = sorted((shared / 'data/cifar10/test').rglob('*.jpg'))[::25]           # 200 images, every class
    classes = sorted({f.parent.name for f in files})
    labels = torch.tensor([classes.index(f.parent.name) for f in files])
    ims = [load_rgb(f) for f in files]
    assert learn.model.img_size == ims[0].size == (32, 32)
    truth = torch.stack([torch.from_numpy(np.asarray(im, np.float32) / 255).permute(2, 0, 1) for im in ims])
    with torch.inference_mode():
        L_, _ = encode_lab(truth)
        ab = learn.model.eval()(L_)
        forward = decode_lab(L_, ab)                                          # as validation scores it
        fitted = lab_to_rgb_in_gamut(torch.cat([(L_ + 1) * 50, ab * 110], 1))  # with colourize's gamut fit
    public = torch.stack([torch.from_numpy(np.asarray(im, np.float32) / 255).permute(2, 0, 1)
                          for im in colourize_many(learn, ims, bs=100)])
    assert (public - fitted).abs().mean() <= 0.5 / 255                        # the same pixels, 8-bit rounded
    judge = resnet20_cifar(shared / 'weights/resnet32-d509ac18.th', depth=32).eval()
    m, s = (torch.tensor(v).view(1, 3, 1, 1) for v in judge.stats)
    def scores(rgb):
        with torch.no_grad(): top1 = (judge((rgb - m) / s).argmax(1) == labels).float().mean().item() * 100
        return dict(psnr=psnr(rgb, truth).mean().item(), ssim=ssim(rgb, truth).mean().item(), top1=top1,
                    dcf=abs(colourfulness(rgb).mean().item() - colourfulness(truth).mean().item()))
    f, p, g = scores(forward), scores(public), scores(fitted)
    assert p['psnr'] >= f['psnr'] - 0.1 and p['ssim'] >= f['ssim'] - 0.002, (f, p)      # no worse than validation's
    # the colour amount and the judge against the same gamut-fitted colours (validation clips RGB instead, which
    # moves colourfulness by a few tenths on a vivid model): only 8-bit rounding may differ
    assert abs(g['dcf'] - p['dcf']) <= 0.2 and abs(g['top1'] - p['top1']) <= 1.0, (g, p)


def test_colourize_equals_a_float64_reference_of_the_same_steps_within_one_unit(model_file):
    "The fast full-resolution path (tables, float32 in place) against the same steps done plainly in float64."
    import torch.nn.functional as F
    import skimage.data
    from colourgan_fastai import colourize, load_colourizer
    from colourgan_fastai.lab import lightness, lab_to_rgb_in_gamut, L_SCALE, L_SHIFT, AB_SCALE
    learn = load_colourizer(model_file)
    G = learn.model.eval()
    G.set_prediction(chroma_gain=1.6)                     # more colour than it learnt: many pixels out of gamut
    rgb = skimage.data.chelsea()                           # 451 x 300, 8-bit
    H, W = rgb.shape[:2]
    L64 = lightness(torch.from_numpy(rgb).permute(2, 0, 1).double() / 255)[0]
    h, w = 32, 48                                          # the render shape colourize picks at 32 px
    small = F.interpolate(L64[None, None], (h, w), mode='bilinear', antialias=True, align_corners=False)
    with torch.no_grad():
        x = F.pad((small / L_SCALE - L_SHIFT).float(), (8, 8, 8, 8), mode='reflect')
        ab = G(x)[..., 8:8 + h, 8:8 + w].double()
    ab = F.interpolate(ab, (H, W), mode='bilinear', align_corners=False)[0] * AB_SCALE
    want = (lab_to_rgb_in_gamut(torch.cat([L64[None], ab])) * 255 + 0.5).floor().clamp(0, 255).permute(1, 2, 0)
    got = torch.from_numpy(np.asarray(colourize(learn, rgb))).double()
    assert (got - want).abs().max() <= 1
    assert (got != want).double().mean() < 0.05
