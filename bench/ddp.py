"""Images/s of GAN training with 1 vs 2 processes (torchrun, gloo, CPU) on this machine.

    python bench/ddp.py            # prints one line per process count

Each run: the ResNet-20 U-Net + GANColourizer at 32 px, bs 32 per process, one warm-up epoch, then the median
of 3 timed epochs of the same number of images in total (so 2 processes each see half)."""
import subprocess
import sys

WORKER = r'''
import sys, time, json, statistics, warnings, torch
warnings.simplefilter('ignore')
n_proc, n = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(max(1, 2 // n_proc))
from fastai.callback.core import Callback, CancelValidException
from fastai.distributed import rank_distrib
from fastai.torch_core import set_seed
from colourgan_fastai import sample_photos_dls, colour_learner, GANColourizer, cpu_distrib_ctx
class NoValid(Callback):
    def before_validate(self): raise CancelValidException()
set_seed(0)
dls = sample_photos_dls(size=32, n=int(n / 0.8) + 1, bs=32)
learn = colour_learner(dls, arch='resnet20_cifar', pretrained=False)
learn.add_cb(GANColourizer())
ts = []
ctx = cpu_distrib_ctx(learn) if n_proc > 1 else learn.no_bar()
with ctx, learn.no_logging():
    for i in range(4):
        t = time.perf_counter(); learn.fit(1, 1e-4, cbs=NoValid()); ts.append(time.perf_counter() - t)
if not rank_distrib(): print(json.dumps({'procs': n_proc, 'img_s': len(dls.train_ds) // 32 * 32 / statistics.median(ts[1:])}))
'''


def main():
    n = 640
    for procs in (1, 2):
        cmd = [sys.executable, '-c', WORKER, str(procs), str(n)] if procs == 1 else \
            [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(procs), '--master_port', '29541',
             '--no-python', sys.executable, '-c', WORKER, str(procs), str(n)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode: print(out.stderr[-2000:]); raise SystemExit(1)
        print(out.stdout.strip().splitlines()[-1])


if __name__ == '__main__': main()
