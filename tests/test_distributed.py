import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HELPER = Path(__file__).parent / 'helpers' / 'ddp_train.py'


@pytest.mark.parametrize('hints', [False, True], ids=['plain', 'with_colour_hints'])
def test_two_cpu_processes_train_G_and_D_in_sync(tmp_path, hints):
    pytest.importorskip('accelerate')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(29533 + hints),
           str(HELPER), str(tmp_path)] + (['hints'] if hints else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f'rank{i}.pt', weights_only=False) for i in (0, 1))
    assert (r0['rank'], r1['rank']) == (0, 1)
    assert r0['n_batches'] == r1['n_batches'] == 4       # 64 training crops / 2 ranks / bs 8
    for net in ('G', 'D'):
        assert r0[net].keys() == r1[net].keys()
        for k in r0[net]:
            assert torch.allclose(r0[net][k].float(), r1[net][k].float(), atol=1e-6), (net, k)
    assert all(math.isfinite(v) for v in r0['losses'] + r1['losses'])
    assert ('hint_conv.weight' in r0['G']) == hints
    if hints: assert r0['G']['hint_conv.weight'].abs().sum() > 0          # the hint input trained, in step on both ranks


def test_importing_changes_nothing_in_fastai_and_the_gloo_fix_is_opt_in_and_keeps_cpu_tensors_on_cpu(monkeypatch):
    import subprocess
    code = ("from fastai.distributed import DistributedDL; before = DistributedDL.__dict__['_broadcast']; "
            "import colourgan_fastai; assert DistributedDL.__dict__['_broadcast'] is before; print('same')")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == 'same', out.stderr[-2000:]
    import torch.distributed as dist
    from fastai.distributed import DistributedDL
    from colourgan_fastai.distributed import gloo_broadcast
    seen, fastais = {}, DistributedDL.__dict__['_broadcast']
    monkeypatch.setattr(dist, 'get_backend', lambda: 'gloo')
    monkeypatch.setattr(dist, 'broadcast', lambda t, src: seen.update(device=t.device, src=src))
    with gloo_broadcast():
        assert DistributedDL._broadcast(None, [3, 1, 2], 0) == [3, 1, 2]
    assert seen == {'device': torch.device('cpu'), 'src': 0}
    assert DistributedDL.__dict__['_broadcast'] is fastais                 # restored on leaving


def test_resumed_training_equals_uninterrupted(tiny_dls, tmp_path):
    from fastai.callback.core import Callback, CancelFitException
    from fastai.torch_core import set_seed
    from colourgan_fastai import colour_learner, GANColourizer

    class SeedEachEpoch(Callback):           # the same batches in each epoch, however the run got there
        def before_epoch(self):
            set_seed(100 + self.epoch)
            self.dls.train.rng = random.Random(100 + self.epoch)      # the DataLoader's own shuffling RNG

    class StopAfterFirstEpoch(Callback):
        def after_epoch(self): raise CancelFitException()

    def make():
        set_seed(0)
        learn = colour_learner(tiny_dls, arch='resnet20_cifar', pretrained=False)
        learn.path = tmp_path
        learn.add_cb(GANColourizer())
        return learn

    full = make()
    full.fit_one_cycle(2, 1e-3, cbs=SeedEachEpoch())

    part = make()
    part.fit_one_cycle(2, 1e-3, cbs=[SeedEachEpoch(), StopAfterFirstEpoch()])
    part.save('ck')
    resumed = make()                          # a new process would start here
    resumed.load('ck')
    resumed.fit_one_cycle(2, 1e-3, cbs=SeedEachEpoch(), start_epoch=1)

    for a, b in ((full.model, resumed.model), (full.gan_colourizer.disc, resumed.gan_colourizer.disc)):
        for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            if torch.is_tensor(x): assert torch.allclose(x.float(), y.float(), atol=1e-5), k
    sa, sb = full.gan_colourizer.disc_opt.state_dict(), resumed.gan_colourizer.disc_opt.state_dict()
    assert all(torch.allclose(sa['state'][i]['exp_avg'], sb['state'][i]['exp_avg'], atol=1e-6) for i in sa['state'])
    assert full.gan_colourizer.n_batches == resumed.gan_colourizer.n_batches == 8
