import copy
import math
import subprocess
import sys

import pytest
import torch
from torch import nn
from fastai.callback.core import Callback

from colourgan_fastai import GANColourizer, colour_learner, PSNR


def _snap(m): return {k: v.detach().clone() for k, v in m.state_dict().items() if torch.is_tensor(v)}
def _params(m): return [p.detach().clone() for p in m.parameters()]
def _same(a, b): return all(torch.equal(x, y) for x, y in zip(a, b))


class Probe(Callback):
    "Watches G and D around the D step (GANColourizer.after_pred) and the G step (after_step)."
    order = 30
    def __init__(self, gan): self.gan, self.log = gan, []
    def before_batch(self):
        if self.training: self.g0, self.d0 = _params(self.learn.model), _params(self.gan.disc)
    def after_pred(self):
        if not self.training: return
        self.g_after_d, self.d1 = _params(self.learn.model), _params(self.gan.disc)
        self.d_grads = [p.grad.clone() for p in self.gan.disc.parameters()]
    def before_step(self):      # after G's backward: D's gradients are still those of the D step
        self.d_grads_unchanged = _same(self.d_grads, [p.grad for p in self.gan.disc.parameters()])
    def after_step(self):
        self.log.append(dict(d_step_moved_G=not _same(self.g0, self.g_after_d), d_step_moved_D=not _same(self.d0, self.d1),
                             g_step_moved_D=not _same(self.d1, _params(self.gan.disc)),
                             g_step_moved_G=not _same(self.g_after_d, _params(self.learn.model)),
                             d_grads_unchanged=self.d_grads_unchanged))


def test_G_and_D_have_separate_optimisers_and_never_move_each_other(tiny_learn):
    gan = GANColourizer()
    tiny_learn.add_cb(gan)
    probe = Probe(gan)
    tiny_learn.fit(1, 1e-3, cbs=probe)
    g_ids = {id(p) for p in tiny_learn.opt.all_params().itemgot(0)}
    d_ids = {id(p) for p in gan.disc.parameters()}
    assert g_ids == {id(p) for p in tiny_learn.model.parameters()} and not g_ids & d_ids
    assert {id(p) for g in gan.disc_opt.param_groups for p in g['params']} == d_ids
    assert gan.disc_opt.param_groups[0]['lr'] == 2e-4 and gan.disc_opt.param_groups[0]['betas'] == (0.5, 0.999)
    assert len(probe.log) == 4                   # 77 training crops, bs 16, last partial batch dropped
    for rec in probe.log:
        assert rec == dict(d_step_moved_G=False, d_step_moved_D=True, g_step_moved_D=False, g_step_moved_G=True,
                           d_grads_unchanged=True)


def test_lr_find_leaves_G_and_D_as_it_found_them(tiny_learn):
    gan = GANColourizer()
    tiny_learn.add_cb(gan)
    tiny_learn.fit(1, 1e-3)                       # D and its optimiser have state worth keeping
    g, d, dopt = _snap(tiny_learn.model), _snap(gan.disc), copy.deepcopy(gan.disc_opt.state_dict())
    res = tiny_learn.lr_find(num_it=4, show_plot=False)
    assert res.valley > 0
    assert all(torch.equal(v, g[k]) for k, v in _snap(tiny_learn.model).items() if 'gan_colourizer' not in k)
    assert all(torch.equal(v, d[k]) for k, v in _snap(gan.disc).items())
    after = gan.disc_opt.state_dict()['state']
    assert all(torch.equal(after[i]['exp_avg'], s['exp_avg']) for i, s in dopt['state'].items())


def test_save_load_round_trip_carries_D_and_its_optimiser(tiny_learn, tmp_path):
    tiny_learn.path = tmp_path
    gan = GANColourizer()
    tiny_learn.add_cb(gan)
    tiny_learn.fit(1, 1e-3)
    tiny_learn.save('gan')
    d, dopt, n = _snap(gan.disc), copy.deepcopy(gan.disc_opt.state_dict()), gan.n_batches
    tiny_learn.fit(1, 1e-3)                       # move everything on
    assert not all(torch.equal(v, d[k]) for k, v in _snap(gan.disc).items())
    tiny_learn.load('gan')
    assert all(torch.equal(v, d[k]) for k, v in _snap(gan.disc).items())
    assert gan.n_batches == n
    assert torch.equal(gan.disc_opt.state_dict()['state'][0]['exp_avg'], dopt['state'][0]['exp_avg'])
    # a brand-new Learner and callback restore the same D from the file
    fresh = colour_learner(tiny_learn.dls, arch='resnet20_cifar', pretrained=False)
    fresh.path = tmp_path
    gan2 = GANColourizer(); fresh.add_cb(gan2)
    fresh.load('gan')
    assert all(torch.equal(v, d[k]) for k, v in _snap(gan2.disc).items())
    # without the callback the generator still loads, with a warning about the unused D
    plain = colour_learner(tiny_learn.dls, arch='resnet20_cifar', pretrained=False); plain.path = tmp_path
    with pytest.warns(UserWarning, match='gan_colourizer'): plain.load('gan')
    assert all(torch.equal(v, _snap(tiny_learn.model)[k]) for k, v in _snap(plain.model).items())
    # the model file is fastai's own: plain fastai's load_model reads it, and D lives in the file beside it
    from fastai.learner import load_model
    bare = colour_learner(tiny_learn.dls, arch='resnet20_cifar', pretrained=False).model
    load_model(tmp_path / 'models' / 'gan.pth', bare, None, with_opt=False)
    assert all(torch.equal(v, _snap(tiny_learn.model)[k]) for k, v in _snap(bare).items())
    assert set(torch.load(tmp_path / 'models' / 'gan.pth', weights_only=False)) == {'model', 'opt'}
    assert (tmp_path / 'models' / 'gan.gan_colourizer.pth').is_file()


def test_export_has_no_D_and_loads_in_a_fresh_process(tiny_learn, tmp_path):
    tiny_learn.add_cb(GANColourizer())
    tiny_learn.fit(1, 1e-3)
    tiny_learn.export(tmp_path / 'g.pkl')
    d_params = sum(p.numel() for p in tiny_learn.gan_colourizer.disc.parameters())
    code = f"""
import warnings, torch; warnings.simplefilter('ignore')
from fastai.learner import load_learner
from PIL import Image
import numpy as np
learn = load_learner(r'{tmp_path / "g.pkl"}')
cb = [c for c in learn.cbs if type(c).__name__ == 'GANColourizer']
assert not cb or cb[0].disc is None, 'D was exported'
dec, pred, raw = learn.predict(np.asarray(Image.new('RGB', (32, 32), (120, 60, 30))))
assert raw.shape == (2, 32, 32), raw.shape
print('OK', sum(p.numel() for p in learn.model.parameters()))
"""
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'OK' in out.stdout
    # the file holds G only: far smaller than G + D
    g_bytes = sum(p.numel() for p in tiny_learn.model.parameters()) * 4
    assert (tmp_path / 'g.pkl').stat().st_size < g_bytes + d_params * 4 // 2


def test_recorder_shows_loss_parts_and_validation_stays_plain_L1(tiny_learn):
    tiny_learn.metrics = [PSNR()]
    tiny_learn.add_cb(GANColourizer(lambda_l1=10.))
    tiny_learn.fit_flat_cos(1, 1e-3)
    names = tiny_learn.recorder.metric_names
    assert names[1:] == ['train_loss', 'valid_loss', 'psnr', 'loss_D', 'loss_G_GAN', 'loss_G_L1', 'time']
    row = dict(zip(names[1:-1], tiny_learn.recorder.values[-1]))
    assert all(math.isfinite(v) for v in row.values())
    assert row['loss_D'] > 0 and row['loss_G_GAN'] > 0 and 0 < row['loss_G_L1'] < 1
    assert row['train_loss'] > 5 * row['loss_G_L1']                    # BCE + 10 * L1
    preds, targs = tiny_learn.get_preds()
    assert tiny_learn.validate()[0] == pytest.approx((preds - targs).abs().mean().item(), rel=1e-4)


def test_d_warmup_trains_only_D_first(tiny_learn):
    gan = GANColourizer(d_warmup_batches=3)
    tiny_learn.add_cb(gan)
    gan.build_disc()
    g0, d0 = _params(tiny_learn.model), _params(gan.disc)
    moves = []
    class Watch(Callback):
        order = 90
        def after_batch(self):
            if self.training: moves.append(not _same(g0, _params(self.learn.model)))
    tiny_learn.fit(1, 1e-3, cbs=Watch())
    assert moves == [False, False, False, True]
    assert not _same(d0, _params(gan.disc))


class ConstantD(nn.Module):
    def __init__(self): super().__init__(); self.b = nn.Parameter(torch.tensor(10.))
    def forward(self, x): return self.b.expand(x.shape[0], 1, 2, 2)


@pytest.mark.parametrize('smooth', [0., 0.1])
def test_label_smoothing_sets_the_real_target(tiny_learn, smooth):
    gan = GANColourizer(label_smoothing=smooth, disc=ConstantD())
    tiny_learn.add_cb(gan)
    class Stop(Callback):
        order = 30
        def after_pred(self): raise __import__('fastai').callback.core.CancelFitException()
    tiny_learn.fit(1, 1e-3, cbs=Stop())
    bce = lambda z, t: max(z, 0) - z * t + math.log1p(math.exp(-abs(z)))
    assert gan._loss_D.item() == pytest.approx(0.5 * (bce(10, 1 - smooth) + bce(10, 0)), rel=1e-4)


def test_bad_settings_and_models_are_rejected(tiny_learn, tiny_dls):
    with pytest.raises(ValueError, match='lambda_l1'): GANColourizer(lambda_l1=-1)
    with pytest.raises(ValueError, match='label_smoothing'): GANColourizer(label_smoothing=1.)
    with pytest.raises(ValueError, match='d_lr'): GANColourizer(d_lr=0)
    from fastai.learner import Learner
    three = Learner(tiny_dls, nn.Conv2d(1, 3, 1), loss_func=nn.L1Loss())
    with pytest.raises(ValueError, match='output 2 channels'): three.fit(1, cbs=GANColourizer())
    rgb_in = Learner(tiny_dls, nn.Conv2d(3, 2, 1), loss_func=nn.L1Loss())
    with pytest.raises(ValueError, match='must map L'): rgb_in.fit(1, cbs=GANColourizer())


def test_bf16_mixed_precision_runs_both_nets_in_bf16_on_cpu(tiny_learn):
    "to_bf16() on a CPU really autocasts (fastai's own MixedPrecision would leave it fp32): G's and D's convs."
    seen = {}
    def probe(name):
        def hook(mod, inp, out): seen.setdefault(name, set()).add(out.dtype)
        return hook
    gan = GANColourizer()
    tiny_learn.to_bf16()
    tiny_learn.add_cb(gan)
    gan.build_disc()
    conv_G = next(m for m in tiny_learn.model.modules() if isinstance(m, nn.Conv2d))
    conv_D = next(m for m in gan.disc.modules() if isinstance(m, nn.Conv2d))
    hooks = [conv_G.register_forward_hook(probe('G')), conv_D.register_forward_hook(probe('D'))]
    tiny_learn.fit(1, 1e-3)
    for h in hooks: h.remove()
    assert seen['G'] == {torch.bfloat16} and seen['D'] == {torch.bfloat16}
    assert all(math.isfinite(v) for v in tiny_learn.recorder.values[-1])
    assert all(p.dtype == torch.float32 for p in tiny_learn.model.parameters())      # fp32 master weights
    tiny_learn.to_fp32()
    seen.clear(); conv_G.register_forward_hook(probe('G'))
    tiny_learn.fit(1, 1e-3)
    assert seen['G'] == {torch.float32}


def test_fp16_on_cpu_is_refused_with_advice(tiny_learn):
    tiny_learn.to_fp16()
    with pytest.raises(ValueError, match='to_bf16'): tiny_learn.fit(1, 1e-3)


def test_show_results_draws_input_truth_prediction(tiny_learn):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    tiny_learn.add_cb(GANColourizer())
    tiny_learn.show_results(max_n=3)
    axes = [ax for ax in plt.gcf().axes if ax.images]
    assert len(axes) == 9
    assert plt.gcf()._suptitle.get_text() == 'Input/Target/Prediction'
    plt.close('all')


def test_removing_the_callback_detaches_it(tiny_learn):
    gan = GANColourizer()
    tiny_learn.add_cb(gan)
    tiny_learn.fit(1, 1e-3)
    tiny_learn.remove_cb(gan)
    assert [m.name for m in tiny_learn.metrics] == []
    tiny_learn.fit(1, 1e-3)
    assert tiny_learn.recorder.metric_names[1:] == ['train_loss', 'valid_loss', 'time']


@pytest.mark.skipif(not torch.cuda.is_available(), reason='fp16 mixed precision needs a GPU (exercised when one is present)')
def test_fp16_on_gpu_gives_D_its_own_grad_scaler(tiny_dls):
    learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False).to_fp16()
    gan = GANColourizer()
    learn.add_cb(gan)
    learn.fit(1, 1e-3)
    assert isinstance(gan.disc_scaler, torch.amp.GradScaler)        # D's own; fastai's scaler serves G alone
    assert all(math.isfinite(v) for v in learn.recorder.values[-1])


def test_attaching_does_no_work_and_D_is_built_once_at_the_first_fit(tiny_learn):
    gan = GANColourizer()
    tiny_learn.add_cb(gan)
    assert gan.disc is None and gan.disc_opt is None                    # the setter builds nothing
    tiny_learn.remove_cb(gan)
    tiny_learn.fit(1, 1e-3, cbs=gan)
    assert gan.disc is not None and gan.disc_opt is not None
    assert not hasattr(tiny_learn, 'gan_colourizer')                     # fastai detached it after fit


def test_fit_with_cbs_twice_keeps_D_and_its_optimiser_and_save_writes_D_while_attached(tiny_learn, tmp_path):
    gan = GANColourizer()
    tiny_learn.fit(1, 1e-3, cbs=gan)
    d, opt = gan.disc, gan.disc_opt
    steps = gan.disc_opt.state_dict()['state'][0]['step'].item()
    tiny_learn.fit(1, 1e-3, cbs=gan)
    assert gan.disc is d and gan.disc_opt is opt                         # not rebuilt
    assert gan.disc_opt.state_dict()['state'][0]['step'].item() == 2 * steps == 2 * 4
    assert gan.n_batches == 8
    tiny_learn.path = tmp_path
    tiny_learn.save('detached')                                          # fit(cbs=...) detached the callback
    assert not (tmp_path / 'models' / 'detached.gan_colourizer.pth').exists()
    tiny_learn.add_cb(gan)
    tiny_learn.save('attached')
    saved = torch.load(tmp_path / 'models' / 'attached.gan_colourizer.pth', weights_only=False)
    assert saved['n_batches'] == 8
    assert all(torch.equal(v, saved['disc'][k]) for k, v in _snap(d).items())


def test_model_copies_carry_G_alone_with_the_callback_attached(tiny_learn):
    import io
    gan = GANColourizer()
    tiny_learn.add_cb(gan)
    tiny_learn.fit(1, 1e-3)
    G2 = copy.deepcopy(tiny_learn.model)
    refs = [v for v in vars(G2).values() if not isinstance(v, (dict, bool, int, float, str, tuple, type(None)))]
    assert not any(isinstance(v, (Callback, type(tiny_learn))) for v in refs)
    assert set(G2.state_dict()) == set(tiny_learn.model.state_dict())
    assert all(torch.is_tensor(v) for v in tiny_learn.model.state_dict().values())
    buf = io.BytesIO(); torch.save(tiny_learn.model, buf)
    g_bytes = sum(p.numel() for p in tiny_learn.model.parameters()) * 4
    d_bytes = sum(p.numel() for p in gan.disc.parameters()) * 4
    assert buf.tell() < g_bytes + d_bytes // 4                           # no D, no Learner, no data in it
    y = G2.eval()(torch.zeros(1, 1, 32, 32))
    assert y.shape == (1, 2, 32, 32)


def test_exported_learner_with_a_new_callback_loads_a_gan_checkpoint_and_restores_D(tiny_learn, tmp_path):
    from fastai.learner import load_learner
    tiny_learn.path = tmp_path
    gan = GANColourizer()
    tiny_learn.add_cb(gan)
    tiny_learn.fit(1, 1e-3)
    tiny_learn.save('gan')
    tiny_learn.remove_cb(gan)
    tiny_learn.export(tmp_path / 'g.pkl')
    learn = load_learner(tmp_path / 'g.pkl')
    learn.path = tmp_path
    gan2 = GANColourizer()
    learn.add_cb(gan2)
    learn.load('gan')
    assert gan2.n_batches == gan.n_batches == 4
    assert all(torch.equal(v, _snap(gan.disc)[k]) for k, v in _snap(gan2.disc).items())
    assert gan2.disc_opt.state_dict()['state'][0]['step'] == gan.disc_opt.state_dict()['state'][0]['step']


def test_bf16_on_a_cpu_without_bf16_units_warns_and_names_the_cpu_feature(tiny_learn, monkeypatch):
    import colourgan_fastai.precision as prec
    assert prec.cpu_bf16_native(['fpu', 'avx2', 'fma']) is False
    assert prec.cpu_bf16_native(['avx2', 'avx512f', 'avx512_bf16']) is True
    assert prec.cpu_bf16_native(['amx_bf16']) is True
    monkeypatch.setattr(prec, 'cpu_bf16_native', lambda flags=None: False)
    tiny_learn.to_bf16()
    with pytest.warns(UserWarning, match='emulated .*AVX512-BF16.*to_fp32'): tiny_learn.fit(1, 1e-3)
    monkeypatch.setattr(prec, 'cpu_bf16_native', lambda flags=None: True)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        tiny_learn.fit(1, 1e-3)                                           # native: no warning
    from colourgan_fastai.cli import build_parser
    assert 'AVX512-BF16' in build_parser()._subparsers._group_actions[0].choices['train'].format_help()
