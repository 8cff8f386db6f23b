"""The table and the curve of the hints study (hints_study.py's results.json).

    python examples/studies/hints/report.py runs/hints_study/results.json --figure docs/experiments/hints_curve.png
"""
import argparse
import json
from pathlib import Path

import numpy as np


def mean_over_seeds(results, name, kind):
    "Means over the seeds that have both a hint-free and a hinted run (so the two rows compare like with like)."
    seeds = [k.split('/')[1] for k in results if k.startswith(f'{name}/') and k.endswith('/hints')]
    runs = [v for k, v in results.items() if k.startswith(f'{name}/') and k.endswith(f'/{kind}') and k.split('/')[1] in seeds]
    counts = sorted({int(n) for r in runs for n in r['scores']})
    table = {n: {m: float(np.mean([r['scores'][str(n)][m] for r in runs])) for m in runs[0]['scores']['0']} for n in counts}
    return runs, table


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('results'); p.add_argument('--figure')
    a = p.parse_args()
    results = json.loads(Path(a.results).read_text())
    curves = {}
    for name in ('cifar10', 'imagenette', 'imagenette_mobilenet'):
        plain, pt = mean_over_seeds(results, name, 'plain')
        hinted, ht = mean_over_seeds(results, name, 'hints')
        if not plain or not hinted: continue
        print(f"\n{name}: {len(plain)} seed(s) each; training {np.mean([r['train_s'] for r in plain]):.0f} s without hints, "
              f"{np.mean([r['train_s'] for r in hinted]):.0f} s with (same machine, not side by side: see cost.py)")
        print("| model | hints | PSNR | SSIM | colourfulness | ΔCF | blotch pixels |\n|---|---|---|---|---|---|---|")
        fmt = lambda m: f"{m['psnr']:.2f} | {m['ssim']:.4f} | {m['colourfulness']:.2f} | {m['delta_colourfulness']:.2f} | {m['spurious_colour']:.2%}"
        print(f"| hint-free | 0 | {fmt(pt[0])} |")
        for n, m in ht.items(): print(f"| hinted | {n} | {fmt(m)} |")
        for k, r in sorted(results.items()):
            if k.split('/')[0] == name:
                s = r['scores']
                extra = f", 10 hints {s['10']['psnr'] - s['0']['psnr']:+.2f} dB, far/near {r['locality']['far_over_near']:.3f}" \
                    if 'locality' in r else ''
                print(f"  {k}: no hints {s['0']['psnr']:.2f} dB, ΔCF {s['0']['delta_colourfulness']:.2f}{extra}")
        loc = [r['locality'] for r in hinted]
        print(f"  locality (one hint): |Δab| within 5 px {np.mean([x['near'] for x in loc]):.2f}, in the far half "
              f"{np.mean([x['far'] for x in loc]):.3f} (ratio {np.mean([x['far_over_near'] for x in loc]):.3f})")
        curves[name] = (pt[0]['psnr'], {n: m['psnr'] for n, m in ht.items()})
    if a.figure and curves:
        import matplotlib; matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6))
        for ax, (name, (base, c)) in zip(np.atleast_1d(axes), curves.items()):
            ax.plot(list(c), list(c.values()), 'o-', label='hinted U-Net')
            ax.axhline(base, color='grey', ls='--', label='hint-free U-Net (no hints)')
            ax.set_xlabel('hints per image (sampled from the truth)'); ax.set_ylabel('PSNR (dB)')
            ax.set_title({'cifar10': 'CIFAR-10 test set, 32 px (ResNet-20)',
                          'imagenette': 'Imagenette validation, 96 px (ResNet-20)',
                          'imagenette_mobilenet': 'Imagenette validation, 96 px (MobileNetV2)'}[name])
            ax.legend(); ax.grid(alpha=0.3)
        fig.tight_layout(); fig.savefig(a.figure, dpi=110)
        print(f"wrote {a.figure}")


if __name__ == '__main__':
    main()
