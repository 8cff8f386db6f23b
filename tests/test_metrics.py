import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
import skimage.data
from types import SimpleNamespace

from colourgan_fastai import PSNR, SSIM, Colourfulness, DeltaColourfulness

from colourgan_fastai.metrics import psnr, ssim, colourfulness

from colourgan_fastai.lab import encode_lab
from colourgan_fastai.metrics import score_predictions


def _pair():
    a = torch.tensor(skimage.data.coffee()[:64, :64] / 255., dtype=torch.float32).permute(2, 0, 1)[None]
    b = (a + 0.05 * torch.randn_like(a)).clamp(0, 1)
    return a, b


def _hwc(t): return t[0].permute(1, 2, 0).double().numpy()


def test_psnr_and_ssim_match_skimage():
    a, b = _pair()
    assert psnr(b, a).item() == pytest.approx(peak_signal_noise_ratio(_hwc(a), _hwc(b), data_range=1), abs=1e-3)
    ref = structural_similarity(_hwc(a), _hwc(b), data_range=1, channel_axis=-1, gaussian_weights=True,
                                sigma=1.5, use_sample_covariance=False)
    assert ssim(b, a).item() == pytest.approx(ref, abs=1e-3)
    assert ssim(a, a).item() == pytest.approx(1, abs=1e-6)


def test_colourfulness_formula():
    img = skimage.data.astronaut().astype(np.float64)
    R, G, B = img[..., 0], img[..., 1], img[..., 2]
    rg, yb = np.abs(R - G), np.abs(0.5 * (R + G) - B)
    ref = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    t = torch.tensor(img / 255, dtype=torch.float32).permute(2, 0, 1)[None]
    assert colourfulness(t).item() == pytest.approx(ref, rel=1e-4)
    assert colourfulness(torch.full((1, 3, 8, 8), 0.4)).item() == pytest.approx(0, abs=1e-4)   # grey has none


def test_fastai_metrics_decode_lab_and_average_per_image():
    a, b = _pair()
    La, aba = encode_lab(a)
    learn = SimpleNamespace(xb=(La,), yb=(aba,), pred=aba * 0)                      # grey prediction
    ms = [PSNR(), SSIM(), Colourfulness(), DeltaColourfulness()]
    for m in ms: m.reset(); m.accumulate(learn); m.accumulate(learn)
    assert ms[2].value == pytest.approx(0, abs=0.05)
    assert ms[3].value == pytest.approx(colourfulness(a).item(), rel=1e-3)
    assert ms[0].value < 40 and 0 < ms[1].value < 1
    perfect = SimpleNamespace(xb=(La,), yb=(aba,), pred=aba)
    for m in ms: m.reset(); m.accumulate(perfect)
    assert ms[1].value == pytest.approx(1, abs=1e-4) and ms[3].value == pytest.approx(0, abs=1e-3)
    assert ms[3].name == 'delta_colourfulness' and ms[0].name == 'psnr'


def test_score_predictions_on_a_dataloader(tiny_dls):
    grey = score_predictions(tiny_dls.valid, lambda L, ab: ab * 0)
    truth = score_predictions(tiny_dls.valid, lambda L, ab: ab)
    assert truth['l1'] == 0 and truth['delta_colourfulness'] == pytest.approx(0, abs=1e-4)
    assert grey['l1'] > 0.01 and grey['colourfulness'] < 1 and grey['psnr'] < truth['psnr']


def _ab(a, b, h=32, w=32): return torch.stack([torch.full((h, w), float(a)), torch.full((h, w), float(b))])[None]


def test_spurious_colour_counts_a_blotch_of_a_hue_absent_nearby_and_nothing_else():
    from colourgan_fastai import SpuriousColour
    from colourgan_fastai.metrics import spurious_colour
    red_fish = _ab(0, 0)
    red_fish[..., 8:24, 8:24] = torch.tensor([50., 30.]).view(1, 2, 1, 1)        # a red object on a grey background
    assert spurious_colour(red_fish, red_fish).item() == 0                    # the truth itself
    assert spurious_colour(red_fish * 0, red_fish).item() == 0                # grey output
    assert spurious_colour(red_fish * 0.5, red_fish).item() == 0              # timid but right hue
    green = red_fish.clone()
    green[..., 12:20, 12:20] = torch.tensor([-40., 30.]).view(1, 2, 1, 1)    # a green blotch on the red fish
    assert spurious_colour(green, red_fish).item() == pytest.approx(64 / 1024)
    wall = red_fish.clone()
    wall[..., 0:4, 28:32] = torch.tensor([0., -45.]).view(1, 2, 1, 1)        # blue on the grey wall, far from the fish
    assert spurious_colour(wall, red_fish).item() == pytest.approx(16 / 1024)
    near = red_fish.clone()
    near[..., 4:8, 4:8] = torch.tensor([50., 30.]).view(1, 2, 1, 1)          # red bleeding just beside the red fish
    assert spurious_colour(near, red_fish).item() == 0
    # the fastai metric averages the per-image share over the validation set, on the network's ab/110 scale
    m = SpuriousColour(); m.reset()
    m.accumulate(SimpleNamespace(xb=(torch.zeros(2, 1, 32, 32),), pred=torch.cat([green, red_fish]) / 110,
                                 yb=(torch.cat([red_fish, red_fish]) / 110,)))
    assert m.value == pytest.approx(32 / 1024)
