"""Colours as classes over quantised ab (Zhang et al. 2016): the bins, the rebalancing, the soft encoding, the
annealed mean, the BinnedColourUnet and its loss, and the recipes training it like any other colouriser."""
import pickle

import pytest
import torch

from colourgan_fastai import (ab_bins, rebalance_weights, soft_encode, annealed_mean, BinnedColourUnet, ABClassLoss,
                              colour_learner, check_colourizer, colourize, fit_temperature, train_semantic_colour, AB_SCALE, ColourUnet)


def _const_batches(values, n=2, s=4):
    "Batches whose ab pixels take the given (a, b) values in ab units, one value per image."
    ab = torch.stack([torch.tensor(v).view(2, 1, 1).expand(2, s, s) for v in values]).float() / AB_SCALE
    return [(torch.zeros(len(values), 1, s, s), ab)] * n


def test_ab_bins_keeps_the_cells_the_colours_occupy_with_their_frequencies():
    centres, prior = ab_bins(_const_batches([(0, 0), (0, 0), (0, 0), (41, -19)]), step=10)
    got = {tuple(round(x) for x in (c * AB_SCALE).tolist()): p.item() for c, p in zip(centres, prior)}
    assert got.keys() == {(0, 0), (40, -20)}                        # the nearest cell centre of (41, -19)
    assert got[(0, 0)] == pytest.approx(0.75) and got[(40, -20)] == pytest.approx(0.25)
    with pytest.raises(ValueError, match='no training batches'): ab_bins([])


def test_rebalancing_favours_rare_colours_and_averages_one_over_the_data():
    centres = torch.tensor([[0., 0.], [0.5, 0.], [-0.5, 0.5]])
    prior = torch.tensor([0.9, 0.08, 0.02])
    w = rebalance_weights(centres, prior)
    assert (prior * w).sum().item() == pytest.approx(1.)
    assert w[2] > w[1] > w[0]
    assert torch.allclose(rebalance_weights(centres, prior, lam=1.), torch.ones(3))   # lam 1: no rebalancing


def test_soft_encoding_is_a_distribution_centred_on_the_nearest_cell():
    centres = ab_bins(_const_batches([(x, y) for x in range(-60, 61, 10) for y in range(-60, 61, 10)]), step=10)[0]
    ab = torch.tensor([[[[20 / AB_SCALE]], [[-31 / AB_SCALE]]]])
    q, nearest = soft_encode(ab, centres, k=5, sigma=5.)
    assert q.shape == (1, len(centres), 1, 1) and q.sum(1).item() == pytest.approx(1.)
    assert (q > 0).sum().item() == 5
    assert torch.allclose(centres[nearest.item()] * AB_SCALE, torch.tensor([20., -30.]))
    assert q.argmax(1).item() == nearest.item()


def test_annealed_mean_goes_from_the_mean_at_t1_to_the_mode_as_t_falls():
    centres = torch.tensor([[0., 0.], [0.5, 0.], [0., -0.5]])
    logits = torch.log(torch.tensor([0.2, 0.5, 0.3])).view(1, 3, 1, 1)
    mean = annealed_mean(logits, centres, 1.).flatten()
    assert torch.allclose(mean, torch.tensor([0.25, -0.15]), atol=1e-6)
    assert torch.allclose(annealed_mean(logits, centres, 0.01).flatten(), centres[1], atol=1e-4)
    mid = annealed_mean(logits, centres, 0.38).flatten()
    assert mean[0] < mid[0] < 0.5                                    # sharper than the mean, short of the mode


def _binned(tiny_dls):
    return colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, classify_ab=True)


def test_binned_unet_is_a_colouriser_and_keeps_logits_only_while_training(tiny_dls):
    learn = _binned(tiny_dls)
    m = learn.model
    assert isinstance(m, BinnedColourUnet) and len(m.centres) == len(m.prior) > 10
    check_colourizer(m, (32, 32))
    x = tiny_dls.one_batch()[0]
    out = m.train()(x)
    assert out.shape == (x.shape[0], 2, 32, 32) and m.logits.shape == (x.shape[0], len(m.centres), 32, 32)
    assert out.abs().max() <= m.centres.abs().max() + 1e-5         # a mix of the cells, inside their hull
    m.eval()(x)
    assert m.logits is None
    m.train()(x)
    clone = pickle.loads(pickle.dumps(m))                            # export pickles the model: no stale logits
    assert clone.logits is None and m.logits is not None
    with torch.no_grad():
        m.eval(); a = m(x); m.temperature = 1.; b = m(x)
    assert b.abs().mean() < a.abs().mean()                           # a higher temperature gives duller colours


def test_abclass_loss_is_lower_for_the_right_cell_and_trains_g(tiny_dls):
    learn = _binned(tiny_dls)
    m = learn.model
    loss = ABClassLoss()
    loss.learn = learn
    loss.w = torch.ones(len(m.centres))
    L_, ab = tiny_dls.one_batch()
    _, nearest = soft_encode(ab.as_subclass(torch.Tensor), m.centres)
    right = torch.nn.functional.one_hot(nearest, len(m.centres)).permute(0, 3, 1, 2).float() * 20
    m.logits = right
    good = loss.term(L_, None, ab)
    assert m.logits is None                                          # consumed: a stale one is never reused
    m.logits = right.roll(1, dims=1)
    assert loss.term(L_, None, ab) > good + 5
    m.logits = None
    with pytest.raises(RuntimeError, match='no logits'): loss.term(L_, None, ab)
    plain = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False)
    cb = ABClassLoss(); cb.learn = plain
    with pytest.raises(TypeError, match='BinnedColourUnet'): cb.before_fit()


def test_recipe_trains_a_binned_unet_with_its_class_loss_and_exports_it(tiny_dls, tmp_path):
    learn = _binned(tiny_dls)
    w0 = [p.detach().clone() for p in learn.model.parameters()]
    cbs = train_semantic_colour(learn, 1, 0, ema=False)
    assert any(isinstance(c, ABClassLoss) for c in cbs)
    assert 'loss_abclass' in learn.recorder.metric_names
    assert any(not torch.equal(a, b.detach()) for a, b in zip(w0, learn.model.parameters()))
    learn.export(tmp_path / 'g.pkl')
    from fastai.learner import load_learner
    g = load_learner(tmp_path / 'g.pkl').model
    assert isinstance(g, BinnedColourUnet) and isinstance(g, ColourUnet) and g.logits is None
    assert torch.equal(g.centres, learn.model.centres) and torch.equal(g.prior, learn.model.prior)
    from PIL import Image
    photo = Image.new('L', (50, 37), 128)                            # any size, as every colouriser
    assert colourize(load_learner(tmp_path / 'g.pkl'), photo).size == (50, 37)


def test_fit_temperature_matches_the_truths_colourfulness(tiny_dls):
    from colourgan_fastai import colourfulness, decode_lab
    learn = _binned(tiny_dls)
    learn.fit(2, 3e-3, cbs=ABClassLoss())
    m = learn.model
    batches = list(tiny_dls.valid)
    def gap(T):
        m.temperature = T
        with torch.no_grad():
            got = torch.cat([colourfulness(decode_lab(L_, m.eval()(L_))) for L_, _ in batches])
        true = torch.cat([colourfulness(decode_lab(L_, ab)) for L_, ab in batches])
        return abs(got.mean() - true.mean()).item()
    temps = [0.1, 0.2, 0.38, 0.6, 1.0]
    T = fit_temperature(m, batches, temps)
    assert m.temperature == T and T in temps and not m.training
    assert gap(T) == pytest.approx(min(gap(t) for t in temps), rel=1e-3)
    with pytest.raises(TypeError, match='BinnedColourUnet'):
        fit_temperature(colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False).model, batches)


def test_a_fitted_temperature_travels_with_save_load_and_export(tiny_dls, tmp_path):
    learn = _binned(tiny_dls)
    learn.path, learn.model_dir = tmp_path, '.'
    learn.model.temperature = 0.21
    learn.save('g'); learn.export(tmp_path / 'g.pkl')
    learn.model.temperature = 0.9
    assert learn.load('g', with_opt=False).model.temperature == pytest.approx(0.21)
    from fastai.learner import load_learner
    assert load_learner(tmp_path / 'g.pkl').model.temperature == pytest.approx(0.21)
    with pytest.raises(ValueError, match='> 0'): learn.model.temperature = 0
