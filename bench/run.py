"""Benchmarks: colourgan_fastai against the tutorial loop, fastai's GANLearner and the bare-PyTorch floor,
same machine, same models, same batch, in one run. Each measurement runs in its own process (clean peak RSS);
every figure is the median of all timed runs: --rounds interleaved rounds (so slow drift of a shared machine hits
every row alike) of --repeats runs, each after one warm-up run.

    python bench/run.py --quick          # 32 px only, < 5 min on 2 cores
    python bench/run.py                  # 32 px (ResNet-20 U-Net, bs 64) and 96 px (MobileNetV2 U-Net, bs 32), 2 rounds
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / 'shared'
CFGS = {'cifar': dict(size=32, bs=64, arch='resnet20_cifar', data='cifar10'),
        'mnv2': dict(size=96, bs=32, arch='mobilenet_v2', data='imagenette2-160')}
TRAIN = ['floor_l1', 'floor_l1_cl', 'ours_l1', 'tutorial_l1', 'floor_gan', 'floor_gan_cl', 'ours_gan', 'tutorial_gan',
         'fastai_gan', 'ours_l1_bf16', 'floor_l1_cl_bf16', 'ours_gan_bf16', 'floor_gan_cl_bf16']
BEFORE_AFTER = ['ours_l1_items', 'ours_gan_items']     # ours on the per-item DataLoader: the CachedDL before/after
OTHER = ['data_ours', 'data_ours_items', 'data_tutorial', 'flops', 'infer']


# ---------------------------------------------------------------------------------------------- worker side
@dataclass
class Run:
    "One measurement's settings, parsed from its name: `<base>[_items][_bf16]` (see MEASURES)."
    base: str
    cfg: dict
    batches: int
    repeats: int
    workers: int = 0
    bf16: bool = False           # bf16 autocast (ours: learn.to_bf16(); floor: torch.autocast)
    cache: bool = True           # False (`_items`): ours on the per-item DataLoader instead of CachedDL
    tmp: Path = None             # where generated image files go; removed when the worker ends

    @classmethod
    def parse(cls, name, cfg, batches, repeats, workers, tmp):
        bf16, name = name.endswith('_bf16'), name.removesuffix('_bf16')
        cache, name = not name.endswith('_items'), name.removesuffix('_items')
        return cls(name, cfg, batches, repeats, workers, bf16, cache, tmp)

    @property
    def n(self): return self.cfg['bs'] * self.batches

    def amp(self):
        import torch
        from contextlib import nullcontext
        return torch.autocast('cpu', dtype=torch.bfloat16) if self.bf16 else nullcontext()


def _files(r: Run, n):
    "n training image files: the real data set when ../shared has it, else PNG crops of the embedded photos."
    from fastai.vision.all import get_image_files
    root = SHARED / 'data' / r.cfg['data'] / 'train'
    if root.is_dir(): return sorted(get_image_files(root))[:n]
    from PIL import Image
    from colourgan_fastai.data import sample_photo
    out = []
    for i in range(n):
        ph = sample_photo(i)
        s = r.cfg['size'] * 2; y, x = (i * 7) % (ph.shape[0] - s), (i * 13) % (ph.shape[1] - s)
        p = r.tmp / f'{i}.png'
        Image.fromarray(ph[y:y + s, x:x + s]).save(p); out.append(p)
    return out


def _G(cfg, fast=True):
    "The generator; peers get PyTorch's default memory layout (as their authors run), ours the library's default."
    from colourgan_fastai.models import colour_unet
    return colour_unet(cfg['arch'], cfg['size'], pretrained=False, channels_last=fast)


def _D(cfg, n_in=3, fast=True):
    from colourgan_fastai import PatchDiscriminator
    return PatchDiscriminator(n_in, img_size=cfg['size'], channels_last=fast)


def _ours_dls(r: Run, files, cache=True):
    "Ours: `CachedDL` (decode once, batches from memory) unless cache=False (the per-item pipeline)."
    from colourgan_fastai.data import dls_from_lists
    return dls_from_lists(files, files[:r.cfg['bs']], r.cfg['size'], r.cfg['bs'], cache=cache, num_workers=r.workers)


def _rate(units, ts):
    "Throughput: the median over the timed runs, and each run's value (merged across --rounds)."
    rates = [units / t for t in ts]
    return statistics.median(rates), rates


def _timed(fn, repeats):
    fn()                                            # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return ts


def _fit_one(learn):
    from fastai.callback.core import Callback, CancelValidException
    class NoValid(Callback):
        def before_validate(self): raise CancelValidException()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, cbs=NoValid())


def measure_ours(r: Run, gan):
    from colourgan_fastai import colour_learner, GANColourizer
    learn = colour_learner(_ours_dls(r, _files(r, r.n), cache=r.cache), arch=_G(r.cfg))
    if gan: learn.add_cb(GANColourizer())
    if r.bf16: learn.to_bf16()
    return dict(zip(('img_s', 'runs'), _rate(r.n, _timed(lambda: _fit_one(learn), r.repeats))))


def measure_tutorial(r: Run, gan):
    import torch
    from peers import tutorial_dataloader, MainModel, tutorial_gan_epoch, tutorial_pretrain_epoch
    dl = tutorial_dataloader(_files(r, r.n), r.cfg['size'], r.cfg['bs'])
    G = _G(r.cfg, fast=False)
    if gan:
        model = MainModel(G, _D(r.cfg, fast=False)); fn = lambda: tutorial_gan_epoch(model, dl, r.batches)
    else:
        opt, crit = torch.optim.Adam(G.parameters(), 1e-4), torch.nn.L1Loss()
        fn = lambda: tutorial_pretrain_epoch(G, dl, opt, crit, r.batches)
    return dict(zip(('img_s', 'runs'), _rate(r.n, _timed(fn, r.repeats))))


def measure_fastai_gan(r: Run):
    from peers import fastai_gan_learner
    learn = fastai_gan_learner(_ours_dls(r, _files(r, r.n)), _G(r.cfg, fast=False), _D(r.cfg, n_in=2, fast=False))
    return dict(zip(('img_s', 'runs'), _rate(r.n / 2, _timed(lambda: _fit_one(learn), r.repeats))))  # per G+D pair


def measure_floor(r: Run, gan, channels_last):
    import torch
    from peers import floor_gan_steps, floor_l1_step
    dls = _ours_dls(r, _files(r, r.n))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    batches_mem = [tuple(t.as_subclass(torch.Tensor).contiguous(memory_format=fmt) for t in b) for b in dls.train]
    G, bs = _G(r.cfg, channels_last).train(), r.cfg['bs']
    step = floor_gan_steps(G, _D(r.cfg, fast=channels_last), None, None, bs, r.batches) if gan else floor_l1_step(G)
    def fn():
        for L, ab in batches_mem:
            with r.amp(): step(L, ab)
    return dict(zip(('img_s', 'runs'), _rate(len(batches_mem) * bs, _timed(fn, r.repeats))))


def measure_data_ours(r: Run):
    res = {}
    dls = _ours_dls(r, _files(r, r.n), cache=r.cache)
    if r.cache:                                     # the one-off cost: decode every image once
        t = time.perf_counter(); dls.train.build_cache(); res['cache_ms_per_img'] = (time.perf_counter() - t) / r.n * 1e3
    res['batches_s'], res['runs'] = _rate(len(dls.train), _timed(lambda: [b for b in dls.train], r.repeats))
    return res


def measure_data_tutorial(r: Run):
    from peers import tutorial_dataloader
    dl = tutorial_dataloader(_files(r, r.n), r.cfg['size'], r.cfg['bs'], n_workers=0)
    return dict(zip(('batches_s', 'runs'), _rate(len(dl), _timed(lambda: [b for b in dl], r.repeats))))


def measure_flops(r: Run):
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from torch.profiler import profile, ProfilerActivity
    from peers import floor_gan_steps
    bs, size = r.cfg['bs'], r.cfg['size']
    G, D = _G(r.cfg).train(), _D(r.cfg)
    step = floor_gan_steps(G, D, None, None, bs, 1)
    L, ab = torch.randn(bs, 1, size, size), torch.rand(bs, 2, size, size) - 0.5
    with FlopCounterMode(display=False) as fc: step(L, ab)
    flops = fc.get_total_flops()
    def gflops(bf16):
        "(achieved by the GAN step, peak of 2048^3 matmuls: the best of 10) in GFLOP/s, under fp32 or bf16 autocast."
        ctx = (lambda: torch.autocast('cpu', dtype=torch.bfloat16)) if bf16 else __import__('contextlib').nullcontext
        def fn():
            with ctx(): step(L, ab)
        a, b = (torch.randn(2048, 2048, dtype=torch.bfloat16 if bf16 else torch.float32) for _ in range(2))
        return flops / statistics.median(_timed(fn, r.repeats)) / 1e9, \
            2 * 2048 ** 3 / min(_timed(lambda: a @ b, max(r.repeats, 10))) / 1e9
    res = dict(step_gflop=flops / 1e9)
    res['achieved_gflops'], res['peak_gflops'] = gflops(False)
    res['achieved_gflops_bf16'], res['peak_gflops_bf16'] = gflops(True)
    res['utilisation'] = res['achieved_gflops'] / res['peak_gflops']
    with profile(activities=[ProfilerActivity.CPU]) as prof: step(L, ab)
    res['top_ops'] = [(e.key, round(e.self_cpu_time_total / 1e3, 1)) for e in
                      sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:8]]
    return res


def measure_infer(r: Run):
    import numpy as np, torch
    from colourgan_fastai import colour_learner, colourize
    G, bs = _G(r.cfg).eval(), r.cfg['bs']
    L = torch.randn(bs, 1, r.cfg['size'], r.cfg['size'])
    def fwd():
        with torch.inference_mode(): G(L)
    res = dict(img_s=bs / statistics.median(_timed(fwd, r.repeats)))
    learn = colour_learner(_ours_dls(r, _files(r, bs)), arch=G)
    img = (np.random.RandomState(0).rand(1500, 2000) * 255).astype(np.uint8)     # 3 MP
    res['s_per_mp'] = statistics.median(_timed(lambda: colourize(learn, img), max(1, r.repeats // 2))) / 3.0
    return res


MEASURES = {                     # base name -> measurement; `_items` / `_bf16` suffixes set Run.cache / Run.bf16
    'ours_l1': lambda r: measure_ours(r, gan=False), 'ours_gan': lambda r: measure_ours(r, gan=True),
    'tutorial_l1': lambda r: measure_tutorial(r, gan=False), 'tutorial_gan': lambda r: measure_tutorial(r, gan=True),
    'fastai_gan': measure_fastai_gan,
    'floor_l1': lambda r: measure_floor(r, False, False), 'floor_l1_cl': lambda r: measure_floor(r, False, True),
    'floor_gan': lambda r: measure_floor(r, True, False), 'floor_gan_cl': lambda r: measure_floor(r, True, True),
    'data_ours': measure_data_ours, 'data_tutorial': measure_data_tutorial,
    'flops': measure_flops, 'infer': measure_infer,
}


def worker(name, cfg, batches, repeats, workers=0):
    import torch
    warnings.simplefilter('ignore')
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix='bench_') as tmp:
        r = Run.parse(name, cfg, batches, repeats, workers, Path(tmp))
        if r.base not in MEASURES: raise ValueError(f"unknown measurement {name!r}; known: {', '.join(MEASURES)}")
        res = MEASURES[r.base](r)
    res['maxrss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


# ---------------------------------------------------------------------------------------------- orchestrator
def run_one(name, cfg_name, batches, repeats, workers=0):
    cmd = [sys.executable, str(Path(__file__)), '--worker', name, '--cfg', cfg_name,
           '--batches', str(batches), '--repeats', str(repeats), '--workers', str(workers)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': str(HERE)})
    if out.returncode: raise RuntimeError(f"{name}/{cfg_name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _merge(prev, new):
    "Pool the runs of several rounds: the rate is the median of all runs, peak RSS the largest."
    if prev is None: return new
    key = 'img_s' if 'img_s' in new else 'batches_s'
    prev['runs'] = prev['runs'] + new['runs']
    prev[key] = statistics.median(prev['runs'])
    prev['maxrss_mb'] = max(prev['maxrss_mb'], new['maxrss_mb'])
    return prev


def table(results):
    lines = []
    for cfg_name, r in results.items():
        c = CFGS[cfg_name]
        lines.append(f"\n### {cfg_name}: {c['arch']} U-Net, {c['size']} px, bs {c['bs']}\n")
        lines.append('| training (img/s, median) | L1 pretraining | GAN | peak RSS (MB) L1 / GAN |')
        lines.append('|---|---|---|---|')
        for who, l1, gan in (('ours', 'ours_l1', 'ours_gan'), ('tutorial loop', 'tutorial_l1', 'tutorial_gan'),
                             ('fastai GANLearner (per G+D pair)', None, 'fastai_gan'), ('floor', 'floor_l1', 'floor_gan'),
                             ('floor, channels-last', 'floor_l1_cl', 'floor_gan_cl'),
                             ('ours, bf16 (`learn.to_bf16()`)', 'ours_l1_bf16', 'ours_gan_bf16'),
                             ('floor, channels-last, bf16', 'floor_l1_cl_bf16', 'floor_gan_cl_bf16')):
            f = lambda k: f"{r[k]['img_s']:.1f}" if k and k in r else '—'
            m = lambda k: f"{r[k]['maxrss_mb']:.0f}" if k and k in r else '—'
            lines.append(f"| {who} | {f(l1)} | {f(gan)} | {m(l1)} / {m(gan)} |")
        ratio = lambda a, b: f"{r[a]['img_s'] / r[b]['img_s']:.2f}×" if a in r and b in r else '—'
        lines.append(f"\nours / tutorial: L1 {ratio('ours_l1', 'tutorial_l1')}, GAN {ratio('ours_gan', 'tutorial_gan')};"
                     f" ours / fastai GANLearner (GAN): {ratio('ours_gan', 'fastai_gan')};"
                     f" ours / floor: L1 {ratio('ours_l1', 'floor_l1')}, GAN {ratio('ours_gan', 'floor_gan')};"
                     f" ours / channels-last floor: L1 {ratio('ours_l1', 'floor_l1_cl')}, GAN {ratio('ours_gan', 'floor_gan_cl')}")
        lines.append(f"\nbf16: ours bf16 / tutorial (fp32, as written): L1 {ratio('ours_l1_bf16', 'tutorial_l1')}, GAN "
                     f"{ratio('ours_gan_bf16', 'tutorial_gan')}; ours bf16 / ours fp32: L1 {ratio('ours_l1_bf16', 'ours_l1')}, "
                     f"GAN {ratio('ours_gan_bf16', 'ours_gan')}; ours bf16 / bf16 floor: L1 "
                     f"{ratio('ours_l1_bf16', 'floor_l1_cl_bf16')}, GAN {ratio('ours_gan_bf16', 'floor_gan_cl_bf16')}")
        if 'ours_l1_items' in r:
            lines.append(f"CachedDL before/after (ours fp32, per-item DataLoader -> CachedDL): L1 "
                         f"{r['ours_l1_items']['img_s']:.1f} -> {r['ours_l1']['img_s']:.1f} img/s "
                         f"({ratio('ours_l1', 'ours_l1_items')}), GAN {r['ours_gan_items']['img_s']:.1f} -> "
                         f"{r['ours_gan']['img_s']:.1f} img/s ({ratio('ours_gan', 'ours_gan_items')})")
        if 'data_ours' in r and 'data_tutorial' in r:
            d, t = r['data_ours']['batches_s'], r['data_tutorial']['batches_s']
            di = r['data_ours_items']['batches_s'] if 'data_ours_items' in r else float('nan')
            fastest = max((r[k]['img_s'] for k in ('ours_gan', 'ours_gan_bf16') if k in r), default=float('nan'))
            need = fastest / c['bs']
            lines.append(f"data pipeline (batches/s, no workers): ours (CachedDL) {d:.0f}, ours per-item {di:.1f}, "
                         f"tutorial's per-image skimage {t:.2f} — ours {d / t:.0f}× (per-item {di / t:.1f}×); "
                         f"one-off cache build {r['data_ours']['cache_ms_per_img']:.2f} ms/image; "
                         f"our fastest GAN step consumes {need:.2f} batches/s ({d / need:.0f}× headroom)")
        if 'flops' in r:
            fl = r['flops']
            lines.append(f"GAN step: {fl['step_gflop']:.1f} GFLOP, {fl['achieved_gflops']:.1f} GFLOP/s achieved vs "
                         f"{fl['peak_gflops']:.1f} GFLOP/s fp32 matmul peak = {fl['utilisation']:.0%} utilisation; "
                         f"under bf16 autocast {fl['achieved_gflops_bf16']:.1f} GFLOP/s vs {fl['peak_gflops_bf16']:.1f} "
                         f"bf16 matmul peak ({fl['achieved_gflops_bf16'] / fl['peak_gflops_bf16']:.0%}); "
                         f"top ops (self ms): " + ', '.join(f"{k} {v}" for k, v in fl['top_ops'][:5]))
        if 'infer' in r:
            lines.append(f"inference: {r['infer']['img_s']:.1f} img/s at {c['size']} px (G forward, bs {c['bs']}); "
                         f"colourize at full resolution {r['infer']['s_per_mp']:.2f} s/MP (3 MP image)")
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--quick', action='store_true'); p.add_argument('--tiny', action='store_true', help='for tests')
    p.add_argument('--worker'); p.add_argument('--cfg', default='cifar')
    p.add_argument('--batches', type=int); p.add_argument('--repeats', type=int)
    p.add_argument('--only', nargs='*', help='measure only these names')
    p.add_argument('--json', help='also write the raw results here')
    p.add_argument('--workers', type=int, default=0, help="DataLoader workers for ours (the library's default is 0)")
    p.add_argument('--emulated-bf16', action='store_true', help='measure the bf16 rows even on a CPU without bf16 '
                   'units (AVX512-BF16/AMX), where bf16 is emulated and 10-25x slower; they are skipped otherwise')
    p.add_argument('--rounds', type=int, help='measure every name this many times, interleaved, and take the median '
                   'of all runs: slow drift of a shared machine then hits every row alike (default 2; 1 with --quick)')
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker, CFGS[a.cfg], a.batches, a.repeats, a.workers))); return
    import torch, platform
    cfgs = ['cifar'] if (a.quick or a.tiny) else ['cifar', 'mnv2']
    batches = a.batches or (2 if a.tiny else 3 if a.quick else 10)
    quick = a.quick or a.tiny
    rounds = a.rounds or (1 if quick else 2)
    repeats = a.repeats or (1 if a.tiny else 5 if quick else 3)
    names = a.only or TRAIN + OTHER + ([] if quick else BEFORE_AFTER)
    from colourgan_fastai.precision import cpu_bf16_native, cpu_description
    print(f"CPU: {cpu_description()}")
    if cpu_bf16_native() is False:
        if a.emulated_bf16: print("bf16 rows are EMULATED on this CPU (no AVX512-BF16/AMX): they show the emulation's cost")
        else:
            skipped = [n for n in names if n.endswith('_bf16')]
            names = [n for n in names if not n.endswith('_bf16')]
            if skipped: print(f"skipped {', '.join(skipped)}: this CPU has no bf16 units (AVX512-BF16/AMX), so bf16 "
                              f"would be emulated, 10-25x slower than fp32 (--emulated-bf16 measures them anyway)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {a.workers} DataLoader workers for ours; {batches} batches per run, "
          f"{rounds} interleaved round(s) of {repeats} runs after a warm-up, median of all runs")
    results = {}
    for cfg_name in cfgs:
        results[cfg_name] = {}
        for rnd in range(rounds):
            for name in names:
                if rnd and name in ('flops', 'infer'): continue          # not throughput rows: measured once
                b = max(2, batches // 2) if cfg_name == 'mnv2' else batches
                r = run_one(name, cfg_name, b, repeats, a.workers)
                results[cfg_name][name] = _merge(results[cfg_name].get(name), r)
                print(f"  {cfg_name:5s} {name:18s} round {rnd + 1}: "
                      f"{ {k: v for k, v in r.items() if k != 'runs'} }", flush=True)
    print(table(results))
    if a.json: Path(a.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == '__main__': main()
