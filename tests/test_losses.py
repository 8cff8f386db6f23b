"""The recipe's loss terms and EMA: each is a fastai Callback usable with any colour Learner."""
import pytest
import torch
from fastai.callback.core import Callback

from colourgan_fastai import SemanticLoss, ColourfulnessLoss, WeightEMA, resnet20_cifar, GANColourizer, PSNRLoss, FeatureLoss, ClassGuidanceLoss, colour_learner

from colourgan_fastai.losses import semantic_kl, colourfulness_gap, log_mse, feature_distance, guidance_kl

from colourgan_fastai.lab import encode_lab, decode_lab

from colourgan_fastai.metrics import psnr


def _logits(net, L_, ab):
    "What `net` (an RGB network with `stats`) outputs on the decoded RGB of (L, ab), computed independently."
    m, s = (torch.tensor(v).view(1, 3, 1, 1) for v in net.stats)
    return net((decode_lab(L_, ab) - m) / s)


def _acts(net, layers, L_, ab):
    from fastai.callback.hook import hook_outputs
    with hook_outputs([dict(net.named_modules())[n] for n in layers], detach=False) as h:
        _logits(net, L_, ab)
        return list(h.stored)


def _batch(n=4, s=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return encode_lab(torch.rand(n, 3, s, s, generator=g))


def test_semantic_kl_is_zero_on_the_truth_and_sends_gradients_to_the_prediction_only():
    clf = resnet20_cifar().eval()
    L_, ab = _batch()
    with torch.no_grad(): true = _logits(clf, L_, ab)
    assert semantic_kl(true, _logits(clf, L_, ab)).item() == pytest.approx(0, abs=1e-6)
    pred = (ab * 0.3).requires_grad_()
    loss = semantic_kl(true, _logits(clf, L_, pred))
    loss.backward()
    assert loss.item() > 0 and pred.grad.abs().sum() > 0


def test_feature_distance_is_zero_on_the_truth_grows_with_the_error_and_sends_gradients_back():
    net = resnet20_cifar().eval()
    layers = ['layer1', 'layer2', 'layer3']
    L_, ab = _batch()
    with torch.no_grad(): true = _acts(net, layers, L_, ab)
    assert feature_distance(_acts(net, layers, L_, ab), true).item() == pytest.approx(0, abs=1e-6)
    near, far = (feature_distance(_acts(net, layers, L_, ab * k), true).item() for k in (0.8, 0.2))
    assert 0 < near < far
    pred = (ab * 0.3).requires_grad_()
    feature_distance(_acts(net, layers, L_, pred), true).backward()
    assert pred.grad.abs().sum() > 0


def _fit_checking_the_loss(learn, term_cb, term_fn, weight):
    """Fit one epoch with `term_cb`; on every training batch, check that the loss G trains on is exactly
    L1 + weight * term_fn(L, pred, target), computed here independently."""
    checks = []
    class Spy(Callback):
        order = 90                                             # after the loss terms (25)
        def after_loss(self):
            if not self.training: return
            L_, pred, targ = self.learn.xb[0], self.learn.pred, self.learn.yb[0]
            expected = (pred - targ).abs().mean() + weight * term_fn(L_, pred, targ)
            checks.append((self.learn.loss_grad.item(), expected.item()))
    learn.fit(1, 1e-3, cbs=[term_cb, Spy()])
    assert checks and all(a == pytest.approx(b, rel=1e-5) for a, b in checks)


def _outputs(net, layers):
    from fastai.callback.hook import hook_outputs
    with hook_outputs([dict(net.named_modules())[n] for n in layers]) as h:
        net(torch.rand(1, 3, 64, 64))
        return h.stored


def _unchanged(net):
    "A check that `net` (the user's network) ends a fit exactly as it started: no step, no gradient, no hook."
    before = {k: v.clone() for k, v in net.state_dict().items()}
    def check():
        assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
        assert all(p.grad is None for p in net.parameters())
        assert not any(m._forward_hooks for m in net.modules())
    return check


def test_feature_loss_trains_G_only_adds_its_weighted_term_and_checks_its_layers(tiny_learn):
    net = resnet20_cifar().eval()
    feat = FeatureLoss(net, weight=0.3, layers=['layer2', 'layer3'])
    assert feat.layer_names == ['layer2', 'layer3']
    unchanged = _unchanged(net)
    with torch.no_grad(): ref = lambda L_, pred, targ: feature_distance(
        _acts(net, ['layer2', 'layer3'], L_, pred), _acts(net, ['layer2', 'layer3'], L_, targ))
    _fit_checking_the_loss(tiny_learn, feat, ref, 0.3)
    unchanged()
    assert feat.shared is None                                            # nothing left behind after fit
    assert dict(zip(tiny_learn.recorder.metric_names[1:-1], tiny_learn.recorder.values[-1]))['loss_feat'] > 0
    with pytest.raises(ValueError, match='no layers'): FeatureLoss(resnet20_cifar(), layers=['layer9'])
    with pytest.raises(ValueError, match='name the layers'): FeatureLoss(torch.nn.Conv2d(3, 3, 1))
    from torchvision.models import mobilenet_v2
    m = mobilenet_v2()
    f = FeatureLoss(m)                                                    # the photo encoder: its stage ends
    assert [tuple(o.shape[1:]) for o in _outputs(m, f.layer_names)] == [(24, 16, 16), (32, 8, 8), (96, 4, 4)]


def test_colourfulness_gap_is_zero_on_the_truth_and_pushes_grey_output_towards_colour():
    L_, ab = _batch()
    assert colourfulness_gap(L_, ab, ab).item() == pytest.approx(0, abs=1e-6)
    scale = torch.tensor(0.2, requires_grad=True)
    gap = colourfulness_gap(L_, ab * scale, ab)
    gap.backward()
    assert gap.item() > 0 and scale.grad.item() < 0            # more chroma lowers the gap


def test_psnr_loss_is_minus_a_tenth_of_the_per_image_psnr_and_weighs_errors_on_grey_photos_more():
    L_, ab = _batch()
    pred = ab * 0.5
    expect = -psnr(decode_lab(L_, pred), decode_lab(L_, ab)).mean() / 10
    assert log_mse(L_, pred, ab, eps=1e-12).item() == pytest.approx(expect.item(), rel=1e-4)
    assert log_mse(L_, ab, ab).item() == pytest.approx(-4, abs=1e-3)           # eps caps a perfect image at 40 dB
    # unlike L1 (equal pull) or MSE (pull grows with the error), an image that is already faithful is pulled harder:
    # one more unit of error costs it more dB
    truth = torch.cat([ab[:1], ab[:1]])
    pred = (truth + torch.tensor([0.02, 0.2]).view(2, 1, 1, 1)).requires_grad_()
    log_mse(L_[:1].expand(2, -1, -1, -1), pred, truth).backward()
    assert pred.grad[0].abs().sum() > 3 * pred.grad[1].abs().sum()
    with pytest.raises(ValueError): PSNRLoss(eps=0)


def test_semantic_loss_trains_G_only_adds_its_weighted_term_and_shows_a_column(tiny_learn):
    clf = resnet20_cifar().eval()
    sem = SemanticLoss(clf, weight=0.5)
    unchanged = _unchanged(clf)
    ref = lambda L_, pred, targ: semantic_kl(_logits(clf, L_, targ), _logits(clf, L_, pred))
    _fit_checking_the_loss(tiny_learn, sem, ref, 0.5)
    unchanged()
    names = tiny_learn.recorder.metric_names[1:-1]
    row = dict(zip(names, tiny_learn.recorder.values[-1]))
    assert 'loss_semantic' in names and row['loss_semantic'] > 0
    preds, targs = tiny_learn.get_preds()
    assert row['valid_loss'] == pytest.approx((preds - targs).abs().mean().item(), rel=1e-4)   # validation: plain L1
    assert 'loss_semantic' not in [m.name for m in tiny_learn.metrics]                       # column removed after fit


def test_loss_terms_add_to_the_gan_loss_rather_than_being_scaled_by_lambda(tiny_learn):
    seen = {}
    class Check(Callback):
        order = 30                                             # after GAN (20) and the loss terms (25)
        def after_loss(self):
            if self.training: seen['loss'] = self.learn.loss_grad.item()
    cf = ColourfulnessLoss(weight=3.)
    gan = GANColourizer(lambda_l1=10.)
    tiny_learn.fit(1, 1e-3, cbs=[gan, cf, Check()])
    row = dict(zip(tiny_learn.recorder.metric_names[1:-1], tiny_learn.recorder.values[-1]))
    assert {'loss_cf', 'loss_D', 'loss_G_GAN'} <= set(row)
    assert row['train_loss'] == pytest.approx(row['loss_G_GAN'] + 10 * row['loss_G_L1'] + 3 * row['loss_cf'], rel=0.15)


def test_weight_ema_update_equals_the_formula_and_the_model_ends_on_the_average(tiny_learn):
    G = tiny_learn.model
    w = {k: v.clone() for k, v in G.state_dict().items()}
    steps = []
    class Watch(Callback):
        order = 70                                             # after WeightEMA (60)
        def after_step(self): steps.append({k: v.clone() for k, v in G.state_dict().items()})
    ema = WeightEMA(decay=0.9)
    tiny_learn.fit(1, 1e-2, cbs=[ema, Watch()])
    expect = {k: v.float().clone() for k, v in w.items()}
    for st in steps:
        for k, v in st.items():
            if v.is_floating_point(): expect[k] = 0.9 * expect[k] + 0.1 * v
    for k, v in G.state_dict().items():
        if v.is_floating_point(): assert torch.allclose(v, expect[k], atol=1e-5), k
    assert not all(torch.allclose(v.float(), steps[-1][k].float()) for k, v in G.state_dict().items())
    with pytest.raises(ValueError): WeightEMA(decay=1.5)
    with pytest.raises(ValueError): ColourfulnessLoss(weight=-1)


def test_a_recipe_adds_the_terms_through_the_encoders_network_it_asks_for_and_only_given_one(tiny_dls):
    from colourgan_fastai import Recipe, train
    from colourgan_fastai.encoders import CifarResNet
    seen = []
    class Weights(Callback):
        def before_fit(self): seen.append({type(c).__name__: getattr(c, 'weight', None) for c in self.learn.cbs})
    def run(recipe, net, guided=False):
        seen.clear()
        learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False,
                               class_guidance=recipe.guide_classes(net, tiny_dls))
        assert (learn.model.guide is not None) == guided
        train(learn, recipe, net, phase1_cbs=[Weights()], say=lambda *_: None)
        return seen
    tiny = dict(epochs=1, colour_epochs=0)
    assert 'FeatureLoss' not in run(Recipe.photos(**tiny), None)[0]                     # no network: left out
    assert run(Recipe.photos(**tiny), CifarResNet())[0]['FeatureLoss'] == 0.3
    s = run(Recipe.photos(semantic_weight=0.05, feature_weight=0, **tiny), CifarResNet())[0]
    assert s['SemanticLoss'] == 0.05 and 'FeatureLoss' not in s
    s = run(Recipe.cifar10(calibrate=None, **tiny), CifarResNet(), guided=True)[0]
    assert s['ClassGuidanceLoss'] == 0.003 and s['FeatureLoss'] == 0.3


def test_the_default_recipe_runs_extra_callbacks_in_the_phase_they_are_given_for(tiny_learn):
    from colourgan_fastai import train_semantic_colour
    seen = []
    class Tag(Callback):
        def __init__(self, tag): self.tag = tag
        def before_fit(self): seen.append((self.tag, {type(c).__name__ for c in self.learn.cbs}))
    train_semantic_colour(tiny_learn, 1, 1, phase1_cbs=[Tag('phase1')], colour_cbs=[Tag('colour')])
    assert [t for t, _ in seen] == ['phase1', 'colour']
    assert 'ColourfulnessLoss' not in seen[0][1] and {'ColourfulnessLoss', 'PSNRLoss'} <= seen[1][1]


def test_the_default_recipe_trains_its_colour_phase_on_colour_dls_when_given(tiny_learn):
    "colour_dls: phase 1 on every training image, the colour phase only on those not held out."
    from colourgan_fastai import train_semantic_colour, hold_out
    seen = []
    class Items(Callback):
        def before_fit(self): seen.append((set(self.dls.train.items), set(self.dls.valid.items)))
    every, valid = set(tiny_learn.dls.train.items), set(tiny_learn.dls.valid.items)
    colour_dls, held = hold_out(tiny_learn.dls, 32, seed=0)
    train_semantic_colour(tiny_learn, 1, 1, phase1_cbs=[Items()], colour_cbs=[Items()], colour_dls=colour_dls)
    held = set(held.items)
    assert len(held) == 32 and held < every and tiny_learn.dls is colour_dls
    assert seen[0] == (every, valid) and seen[1] == (every - held, valid)    # phase 1 trains on them, phase 2 never


def test_the_default_recipe_takes_discriminative_learning_rates_for_phase_1(tiny_learn):
    "lr=slice(lo, hi): phase 1 trains the pretrained encoder at lo, the decoder at hi; the colour phase at one rate."
    from colourgan_fastai import train_semantic_colour
    peaks = {}
    class Peak(Callback):
        def __init__(self, phase): self.phase = phase
        def after_batch(self):
            lrs = [h['lr'] for h in self.opt.hypers]
            old = peaks.get(self.phase, [0.] * len(lrs))
            peaks[self.phase] = [max(a, b) for a, b in zip(old, lrs)]
    train_semantic_colour(tiny_learn, 1, 1, lr=slice(1e-4, 1e-3), colour_lr=3e-4,
                          phase1_cbs=[Peak('phase1')], colour_cbs=[Peak('colour')])
    enc, dec = peaks['phase1']
    assert len(peaks['phase1']) == 2 and enc == pytest.approx(dec / 10, rel=1e-6) and 0 < dec <= 1e-3
    assert peaks['colour'][0] == pytest.approx(peaks['colour'][1]) and peaks['colour'][1] <= 3e-4


def test_guidance_kl_is_zero_when_the_logits_match_the_classifier_on_the_truth_and_trains_the_logits_only():
    clf = resnet20_cifar().eval()
    L_, ab = _batch(s=32)
    with torch.no_grad(): truth_logits = _logits(clf, L_, ab)
    assert guidance_kl(truth_logits, truth_logits + 3.).item() == pytest.approx(0, abs=1e-5)
    logits = torch.zeros_like(truth_logits, requires_grad=True)
    loss = guidance_kl(truth_logits, logits)
    loss.backward()
    assert loss.item() > 0 and logits.grad.abs().sum() > 0
    assert all(p.grad is None for p in clf.parameters())


def test_a_new_class_guide_leaves_the_unet_as_it_was_and_keeps_no_batch_tensors(tiny_dls):
    plain = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False).model.eval()
    guided = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, class_guidance=10).model.eval()
    missing = guided.load_state_dict(plain.state_dict(), strict=False)       # the other layers keep their names
    assert not missing.unexpected_keys and all('.head.' in k or '.fuse.' in k for k in missing.missing_keys)
    assert plain.guide is None and guided.guide.n_classes == 10
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad(): assert torch.equal(plain(x), guided(x))           # the fusion starts at zero
    assert not any(torch.is_tensor(v) for v in vars(guided.guide).values())   # no batch tensors kept on the model
    with pytest.raises(ValueError, match='at least 2'): colour_learner(tiny_dls, arch='resnet20_cifar',
                                                                      pretrained=False, class_guidance=1)


def test_class_guidance_loss_adds_its_weighted_term_trains_G_and_its_guide_never_the_classifier(tiny_dls):
    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, class_guidance=10)
    guide = learn.model.guide
    clf = resnet20_cifar().eval()
    cg = ClassGuidanceLoss(clf, weight=0.2)
    unchanged = _unchanged(clf)
    fuse0, enc0 = guide.fuse.weight.clone(), learn.model.layers[0][0].weight.clone()
    logits = []
    h = guide.head.register_forward_hook(lambda m, i, o: logits.append(o))
    ref = lambda L_, pred, targ: guidance_kl(_logits(clf, L_, targ), logits[-1])
    try: _fit_checking_the_loss(learn, cg, ref, 0.2)
    finally: h.remove()
    unchanged()
    assert not torch.equal(fuse0, guide.fuse.weight) and not torch.equal(enc0, learn.model.layers[0][0].weight)
    assert not guide.head._forward_hooks                                   # the term's hook is gone after fit
    row = dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1]))
    assert row['loss_class'] > 0


def test_class_guidance_loss_refuses_a_unet_without_a_guide_or_with_another_number_of_classes(tiny_learn, tiny_dls):
    with pytest.raises(ValueError, match='class_guidance'): tiny_learn.fit(1, cbs=ClassGuidanceLoss(resnet20_cifar()))
    five = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, class_guidance=5)
    with pytest.raises(ValueError, match='10 classes'): five.fit(1, cbs=ClassGuidanceLoss(resnet20_cifar()))


def test_the_cifar10_recipe_adds_class_guidance_to_both_phases_and_the_guided_model_exports(tiny_dls, tmp_path):
    from fastai.learner import load_learner
    from colourgan_fastai import Recipe, train
    from colourgan_fastai.encoders import CifarResNet
    recipe, net = Recipe.cifar10(epochs=1, class_weight=0.02, calibrate=None), CifarResNet()
    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False,
                           class_guidance=recipe.guide_classes(net, tiny_dls))
    seen = []
    class Weights(Callback):
        def before_fit(self): seen.append({type(c).__name__: getattr(c, 'weight', None) for c in self.learn.cbs})
    learn.add_cb(Weights())
    train(learn, recipe, net, say=lambda *_: None)
    assert [s.get('ClassGuidanceLoss') for s in seen] == [0.02, 0.02]
    learn.remove_cb(learn.weights)
    learn.export(tmp_path / 'g.pkl')
    back = load_learner(tmp_path / 'g.pkl').model.eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad(): assert (back(x) - learn.model.eval()(x)).abs().max() < 1e-5
    assert back.guide is not None


def test_terms_through_one_network_share_one_frozen_copy_and_one_pass_over_the_truth_per_batch(tiny_dls):
    "FeatureLoss + ClassGuidanceLoss through one net: one frozen copy, one truth pass per batch, the same loss."
    import copy
    net = resnet20_cifar()
    feat, cg = FeatureLoss(net, 0.3), ClassGuidanceLoss(net, 0.2)
    ref = copy.deepcopy(net).eval()                              # computes the expected loss on its own
    unchanged = _unchanged(net)
    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, class_guidance=10)
    calls, checks, logits = [], [], []
    learn.model.guide.head.register_forward_hook(lambda m, i, o: logits.append(o))
    class Spy(Callback):
        order = 90
        def before_train(self):
            assert feat.shared is cg.shared and feat.net is cg.net and feat.net is not net
            if not calls: feat.net.register_forward_hook(lambda *_: calls.append(1))
            calls.clear()
        def after_loss(self):
            if not self.training: return
            L_, pred, targ = self.learn.xb[0], self.learn.pred, self.learn.yb[0]
            layers = ['layer1', 'layer2', 'layer3']
            expected = ((pred - targ).abs().mean() + 0.3 * feature_distance(_acts(ref, layers, L_, pred),
                        _acts(ref, layers, L_, targ)) + 0.2 * guidance_kl(_logits(ref, L_, targ), logits[-1]))
            checks.append((self.learn.loss_grad.item(), expected.item()))
    learn.fit(1, 1e-3, cbs=[cg, feat, Spy()])
    assert checks and all(a == pytest.approx(b, rel=1e-5) for a, b in checks)
    assert len(calls) == 2 * len(checks)                         # truth + prediction; the class term adds none
    assert feat.shared is None and cg.shared is None             # nothing kept after fit
    unchanged()
