"""Full-resolution speed: `colourize` of a 12 MP photo against the path it replaced, side by side in one run, and
films: frames per second at 720p and peak memory against film length at 1080p (streamed: flat).

    python bench/speed_colourize.py --model models/photos.pkl            # all three, a few minutes on 2 cores
    python bench/speed_colourize.py --model models/demo.pkl --only photo --rounds 5

Each photo timing is the median of --rounds interleaved rounds (before, after, before, after, ...) in one process,
so drift of a shared machine hits both alike. The CPU is printed: compare only figures from one run.
"""
import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def cpu_name():
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


def photo(w=4000, h=3000):
    "A 12 MP photo: scikit-image's astronaut, resized (bicubic), as a PNG-decoded 8-bit array."
    import skimage.data
    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((w, h), Image.BICUBIC))


def _upsample_ab_before(ab, H, W, r0, r1):
    "Rows r0:r1 of `ab` (2, h, w) bilinearly resized to (H, W), as F.interpolate(align_corners=False) would give."
    ys = (torch.arange(r0, r1, dtype=torch.float32) + 0.5) / H * 2 - 1
    xs = (torch.arange(W, dtype=torch.float32) + 0.5) / W * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing='xy'), -1)[None]          # (1, r1-r0, W, 2)
    return F.grid_sample(ab[None].float(), grid, mode='bilinear', padding_mode='border', align_corners=False)[0]



def _strips_before(H, W, pixels=2 ** 21):
    "The strips of rows the replaced path worked in (about 2 M pixels)."
    step = max(1, pixels // W)
    return [(r, min(H, r + step)) for r in range(0, H, step)]


def before_colourize(learn, rgb, render_size=None):
    """The path `colourize` took before the 8-bit fast path: L* in float32 torch per strip, and Lab -> sRGB with
    the gamut search in float32 torch per strip (lab.lab_to_rgb_in_gamut), as the library did until then."""
    import colourgan_fastai.inference as inf
    from colourgan_fastai.lab import lightness, lab_to_rgb_in_gamut, AB_SCALE
    H, W = rgb.shape[:2]
    L = np.empty((H, W), np.float32)
    for r0, r1 in _strips_before(H, W):
        x = torch.from_numpy(rgb[r0:r1].astype(np.float32) / 255).permute(2, 0, 1)
        L[r0:r1] = lightness(x)[0].numpy()
    g = inf.GreyImage(L)
    G = learn.model
    ab_small = inf._predict(G, [g], render_size or inf._default_render_size(G), 1)[0]
    out = np.empty((H, W, 3), np.uint8)
    for r0, r1 in _strips_before(H, W):
        ab = _upsample_ab_before(ab_small.float(), H, W, r0, r1) * AB_SCALE
        lab = torch.cat([torch.from_numpy(L[r0:r1])[None], ab], 0)
        out[r0:r1] = (lab_to_rgb_in_gamut(lab).permute(1, 2, 0) * 255 + 0.5).clamp_(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(out)


def bench_photo(model, rounds):
    from colourgan_fastai import colourize, load_colourizer
    learn = load_colourizer(model)
    rgb = photo()
    mp = rgb.shape[0] * rgb.shape[1] / 1e6
    a, b = np.asarray(before_colourize(learn, rgb)), np.asarray(colourize(learn, rgb))          # warm-up, and:
    diff = int(np.abs(a.astype(int) - b).max())
    times = {'before': [], 'now': []}
    for _ in range(rounds):
        for name, fn in (('before', before_colourize), ('now', colourize)):
            t = time.perf_counter(); fn(learn, rgb); times[name].append(time.perf_counter() - t)
    m = {k: statistics.median(v) / mp for k, v in times.items()}
    return {'megapixels': mp, 's_per_mp_before': m['before'], 's_per_mp_now': m['now'],
            'speedup': m['before'] / m['now'], 'max_diff_8bit': diff, 'rounds': rounds}


def _film(path, w, h, n, fps=24):
    import skimage.data
    from colourgan_fastai.clips import make_clip, write_clip
    big = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((int(w * 1.6), int(h * 1.6)), Image.BICUBIC))
    return write_clip(make_clip(big, 'pan', n=n, size=(w, h), grain=3, flicker=0.02), path, fps, codec='h264')


def bench_video(model, n=48, rounds=3):
    """Frames per second at 720p with the default settings (steadied), and frame by frame for comparison: medians
    of `rounds` interleaved runs."""
    from colourgan_fastai import colourize_video
    times = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        src = _film(Path(tmp) / 'pan720.mp4', 1280, 720, n)
        colourize_video(model, src, Path(tmp) / 'warm.mp4', display=False)                # warm-up
        for _ in range(rounds):
            for steady in (True, False):
                t = time.perf_counter()
                colourize_video(model, src, Path(tmp) / 'out.mp4', steady=steady, overwrite=True, display=False)
                times[steady].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {'frames': n, 'size': '1280x720', 'fps': n / med[True], 'seconds': med[True],
            'fps_frame_by_frame': n / med[False], 'rounds': rounds}


def _peak_worker(model, n):
    "Child process: colourise an n-frame 1080p film, print the peak RSS in MB."
    from colourgan_fastai import colourize_video
    with tempfile.TemporaryDirectory() as tmp:
        src = _film(Path(tmp) / 'pan1080.mp4', 1920, 1080, n)
        colourize_video(model, src, Path(tmp) / 'out.mp4', display=False)
    print(json.dumps({'frames': n, 'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def bench_memory(model, lengths=(24, 96)):
    out = []
    for n in lengths:
        r = subprocess.run([sys.executable, __file__, '--model', str(model), '--peak-worker', str(n)],
                           capture_output=True, text=True, check=True)
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model', required=True)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--only', nargs='+', choices=['photo', 'video', 'memory'], default=['photo', 'video', 'memory'])
    p.add_argument('--frames', type=int, default=48)
    p.add_argument('--peak-worker', type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    if a.peak_worker: return _peak_worker(a.model, a.peak_worker)
    res = {'cpu': cpu_name(), 'capability': torch.backends.cpu.get_cpu_capability(), 'threads': torch.get_num_threads()}
    print(f"CPU: {res['cpu']} ({res['capability']}), {res['threads']} threads, torch {torch.__version__}")
    if 'photo' in a.only:
        r = res['photo'] = bench_photo(a.model, a.rounds)
        print(f"colourize, {r['megapixels']:.0f} MP photo: {r['s_per_mp_before']:.3f} s/MP before, {r['s_per_mp_now']:.3f} "
              f"s/MP now ({r['speedup']:.2f}x; medians of {r['rounds']}); outputs differ by at most {r['max_diff_8bit']}")
    if 'video' in a.only:
        r = res['video'] = bench_video(a.model, a.frames, min(a.rounds, 3))
        print(f"colourize_video, {r['size']}, {r['frames']} frames, default settings (steadied): {r['fps']:.2f} frames/s; "
              f"frame by frame {r['fps_frame_by_frame']:.2f} (medians of {r['rounds']})")
    if 'memory' in a.only:
        r = res['memory'] = bench_memory(a.model)
        print("colourize_video at 1920x1080, peak memory: " + ', '.join(f"{x['frames']} frames {x['peak_mb']:.0f} MB" for x in r))
    print(json.dumps(res))
    return res


if __name__ == '__main__': main()
