"""The recipe's loss terms and EMA: each is a fastai Callback usable with any colour Learner."""
import pytest
import torch
from fastai.callback.core import Callback

from colourgan_fastai import (SemanticLoss, ColourfulnessLoss, WeightEMA, semantic_kl, colourfulness_gap,
                              resnet20_cifar, GANColourizer, encode_lab, decode_lab, PSNRLoss, log_mse, psnr,
                              FeatureLoss, feature_distance, ClassGuidanceLoss, guidance_kl, colour_learner)


def _batch(n=4, s=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return encode_lab(torch.rand(n, 3, s, s, generator=g))


def test_semantic_kl_is_zero_on_the_truth_and_sends_gradients_to_the_prediction_only():
    clf = resnet20_cifar()
    L_, ab = _batch()
    assert semantic_kl(clf.eval(), clf.stats, L_, ab, ab).item() == pytest.approx(0, abs=1e-6)
    pred = (ab * 0.3).requires_grad_()
    loss = semantic_kl(clf, clf.stats, L_, pred, ab)
    loss.backward()
    assert loss.item() > 0 and pred.grad.abs().sum() > 0


def test_feature_distance_is_zero_on_the_truth_grows_with_the_error_and_sends_gradients_back():
    net = resnet20_cifar().eval()
    layers = [net.layer1, net.layer2, net.layer3]
    L_, ab = _batch()
    assert feature_distance(net, net.stats, layers, L_, ab, ab).item() == pytest.approx(0, abs=1e-6)
    near, far = (feature_distance(net, net.stats, layers, L_, ab * k, ab).item() for k in (0.8, 0.2))
    assert 0 < near < far
    pred = (ab * 0.3).requires_grad_()
    feature_distance(net, net.stats, layers, L_, pred, ab).backward()
    assert pred.grad.abs().sum() > 0
    assert not net.layer1._forward_hooks                         # its hooks are removed again


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
    with hook_outputs(layers) as h:
        net(torch.rand(1, 3, 64, 64))
        return h.stored


def test_feature_loss_trains_G_only_adds_its_weighted_term_and_checks_its_layers(tiny_learn):
    feat = FeatureLoss(resnet20_cifar(), weight=0.3, layers=['layer2', 'layer3'])
    assert feat.layers == [feat.net.layer2, feat.net.layer3]
    before = [p.clone() for p in feat.net.parameters()]
    _fit_checking_the_loss(tiny_learn, feat, lambda *b: feature_distance(feat.net, feat.stats, feat.layers, *b), 0.3)
    assert all(torch.equal(a, b) for a, b in zip(before, feat.net.parameters()))        # never trained
    assert all(p.grad is None for p in feat.net.parameters()) and not feat.net.training
    assert dict(zip(tiny_learn.recorder.metric_names[1:-1], tiny_learn.recorder.values[-1]))['loss_feat'] > 0
    with pytest.raises(ValueError, match='no layers'): FeatureLoss(resnet20_cifar(), layers=['layer9'])
    with pytest.raises(ValueError, match='name the layers'): FeatureLoss(torch.nn.Conv2d(3, 3, 1))
    from torchvision.models import mobilenet_v2
    f = FeatureLoss(mobilenet_v2())                                       # the photo encoder: its stage ends
    assert [tuple(o.shape[1:]) for o in _outputs(f.net, f.layers)] == [(24, 16, 16), (32, 8, 8), (96, 4, 4)]


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
    clf = resnet20_cifar()
    sem = SemanticLoss(clf, weight=0.5)
    before = [p.clone() for p in sem.clf.parameters()]
    _fit_checking_the_loss(tiny_learn, sem, lambda *b: semantic_kl(sem.clf, clf.stats, *b), 0.5)
    assert all(torch.equal(a, b) for a, b in zip(before, sem.clf.parameters()))        # never trained
    assert all(p.grad is None for p in sem.clf.parameters()) and not sem.clf.training
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


def test_the_default_recipe_adds_the_semantic_term_only_when_given_a_classifier(tiny_learn):
    from colourgan_fastai import CifarResNet, train_semantic_colour
    assert not any(isinstance(c, SemanticLoss) for c in train_semantic_colour(tiny_learn, 0, 0))
    sem = [c for c in train_semantic_colour(tiny_learn, 0, 0, classifier=CifarResNet()) if isinstance(c, SemanticLoss)]
    assert len(sem) == 1 and sem[0].weight == 0.05
    feat = [c for c in train_semantic_colour(tiny_learn, 0, 0, feature_net=CifarResNet()) if isinstance(c, FeatureLoss)]
    assert len(feat) == 1 and feat[0].weight == 0.3
    assert not train_semantic_colour(tiny_learn, 0, 0, classifier=CifarResNet(), semantic_weight=0,
                                     colourfulness_weight=0, psnr_weight=0)


def test_the_default_recipe_runs_extra_callbacks_in_the_phase_they_are_given_for(tiny_learn):
    from colourgan_fastai import train_semantic_colour
    seen = []
    class Tag(Callback):
        def __init__(self, tag): self.tag = tag
        def before_fit(self): seen.append((self.tag, {type(c).__name__ for c in self.learn.cbs}))
    train_semantic_colour(tiny_learn, 1, 1, phase1_cbs=[Tag('phase1')], colour_cbs=[Tag('colour')])
    assert [t for t, _ in seen] == ['phase1', 'colour']
    assert 'ColourfulnessLoss' not in seen[0][1] and {'ColourfulnessLoss', 'PSNRLoss'} <= seen[1][1]


def test_the_default_recipe_can_weight_the_feature_loss_differently_in_the_colour_phase(tiny_learn):
    from colourgan_fastai import CifarResNet, train_semantic_colour
    seen = []
    class Weights(Callback):
        def before_fit(self): seen.append({type(c).__name__: getattr(c, 'weight', None) for c in self.learn.cbs})
    net = CifarResNet()
    returned = train_semantic_colour(tiny_learn, 1, 1, feature_net=net, colour_feature_weight=1.,
                                     phase1_cbs=[Weights()], colour_cbs=[Weights()])
    assert [s['FeatureLoss'] for s in seen] == [0.3, 1.]                       # phase 1, then the colour phase
    assert [c.weight for c in returned if isinstance(c, FeatureLoss)] == [1.]
    seen.clear()
    train_semantic_colour(tiny_learn, 1, 1, feature_net=net, colour_feature_weight=0.,
                          phase1_cbs=[Weights()], colour_cbs=[Weights()])
    assert seen[0]['FeatureLoss'] == 0.3 and 'FeatureLoss' not in seen[1]     # 0: the colour phase goes without


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
    with torch.no_grad(): truth_logits = clf((decode_lab(L_, ab) - torch.tensor(clf.stats[0]).view(1, 3, 1, 1))
                                             / torch.tensor(clf.stats[1]).view(1, 3, 1, 1))
    assert guidance_kl(clf, clf.stats, L_, ab, truth_logits + 3.).item() == pytest.approx(0, abs=1e-5)
    logits = torch.zeros_like(truth_logits, requires_grad=True)
    loss = guidance_kl(clf, clf.stats, L_, ab, logits)
    loss.backward()
    assert loss.item() > 0 and logits.grad.abs().sum() > 0
    assert all(p.grad is None for p in clf.parameters())


def test_a_new_class_guide_leaves_the_unet_as_it_was_and_keeps_logits_for_training_only(tiny_dls):
    plain = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False).model.eval()
    guided = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, class_guidance=10).model.eval()
    missing = guided.load_state_dict(plain.state_dict(), strict=False)       # the other layers keep their names
    assert not missing.unexpected_keys and all('.head.' in k or '.fuse.' in k for k in missing.missing_keys)
    assert plain.guide is None and guided.guide.n_classes == 10
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad(): assert torch.equal(plain(x), guided(x))           # the fusion starts at zero
    assert guided.guide.logits is None                                      # eval: nothing kept (exports stay clean)
    guided.train()(x)
    assert guided.guide.logits.shape == (3, 10)
    with pytest.raises(ValueError, match='at least 2'): colour_learner(tiny_dls, arch='resnet20_cifar',
                                                                      pretrained=False, class_guidance=1)


def test_class_guidance_loss_adds_its_weighted_term_trains_G_and_its_guide_never_the_classifier(tiny_dls):
    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, class_guidance=10)
    guide = learn.model.guide
    cg = ClassGuidanceLoss(resnet20_cifar(), weight=0.2)
    before = [p.clone() for p in cg.net.parameters()]
    fuse0, enc0 = guide.fuse.weight.clone(), learn.model.layers[0][0].weight.clone()
    checks = []
    class Spy(Callback):
        order = 90                                             # after the loss term (25)
        def before_batch(self): self.logits = None
        def after_pred(self): self.logits = guide.logits if self.training else None
        def after_loss(self):
            if not self.training: return
            L_, pred, targ = self.learn.xb[0], self.learn.pred, self.learn.yb[0]
            expected = (pred - targ).abs().mean() + 0.2 * guidance_kl(cg.net, cg.stats, L_, targ, self.logits)
            checks.append((self.learn.loss_grad.item(), expected.item()))
    learn.fit(1, 1e-3, cbs=[cg, Spy()])
    assert checks and all(a == pytest.approx(b, rel=1e-5) for a, b in checks)
    assert all(torch.equal(a, b) for a, b in zip(before, cg.net.parameters())) and not cg.net.training
    assert not torch.equal(fuse0, guide.fuse.weight) and not torch.equal(enc0, learn.model.layers[0][0].weight)
    row = dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1]))
    assert row['loss_class'] > 0


def test_class_guidance_loss_refuses_a_unet_without_a_guide_or_with_another_number_of_classes(tiny_learn, tiny_dls):
    with pytest.raises(ValueError, match='class_guidance'): tiny_learn.fit(1, cbs=ClassGuidanceLoss(resnet20_cifar()))
    five = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, class_guidance=5)
    with pytest.raises(ValueError, match='10 classes'): five.fit(1, cbs=ClassGuidanceLoss(resnet20_cifar()))


def test_the_default_recipe_adds_class_guidance_to_both_phases_and_the_guided_model_exports(tiny_dls, tmp_path):
    from fastai.learner import load_learner
    from colourgan_fastai import CifarResNet, train_semantic_colour
    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, class_guidance=10)
    seen = []
    class Weights(Callback):
        def before_fit(self): seen.append({type(c).__name__: getattr(c, 'weight', None) for c in self.learn.cbs})
    returned = train_semantic_colour(learn, 1, 1, class_net=CifarResNet(), class_weight=0.02,
                                     phase1_cbs=[Weights()], colour_cbs=[Weights()])
    assert [s.get('ClassGuidanceLoss') for s in seen] == [0.02, 0.02]
    assert [c.weight for c in returned if isinstance(c, ClassGuidanceLoss)] == [0.02]
    learn.export(tmp_path / 'g.pkl')
    back = load_learner(tmp_path / 'g.pkl').model.eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad(): assert (back(x) - learn.model.eval()(x)).abs().max() < 1e-5
    assert back.guide is not None and back.guide.logits is None


def test_terms_through_one_network_share_its_copy_and_one_pass_over_the_truth_per_batch(tiny_dls):
    "FeatureLoss + ClassGuidanceLoss through one net: one frozen copy, one truth pass per batch, the same loss."
    import copy
    net = resnet20_cifar()
    feat, cg = FeatureLoss(net, 0.3), ClassGuidanceLoss(net, 0.2)
    assert feat.net is cg.net and feat.net is not net
    ref = copy.deepcopy(net).eval()                              # computes the expected loss on its own
    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False, class_guidance=10)
    calls, checks = [], []
    feat.net.register_forward_hook(lambda *_: calls.append(1))
    class Spy(Callback):
        order = 90
        def before_train(self): calls.clear()                    # (fit's start counted the classifier's classes)
        def after_pred(self): self.logits = learn.model.guide.logits
        def after_loss(self):
            if not self.training: return
            L_, pred, targ = self.learn.xb[0], self.learn.pred, self.learn.yb[0]
            expected = ((pred - targ).abs().mean() + 0.3 * feature_distance(ref, ref.stats, [ref.layer1, ref.layer2,
                        ref.layer3], L_, pred, targ) + 0.2 * guidance_kl(ref, ref.stats, L_, targ, self.logits))
            checks.append((self.learn.loss_grad.item(), expected.item()))
    learn.fit(1, 1e-3, cbs=[cg, feat, Spy()])                    # in either order: the class term runs second
    assert checks and all(a == pytest.approx(b, rel=1e-5) for a, b in checks)
    assert len(calls) == 2 * len(checks)                         # truth + prediction; the class term adds none
    assert '_truth_memo' not in feat.net.__dict__                # nothing kept after fit
    with torch.no_grad(): next(net.parameters()).mul_(2)         # the source changed: a new term copies it afresh
    assert FeatureLoss(net).net is not feat.net
