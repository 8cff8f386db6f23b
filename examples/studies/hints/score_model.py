"""Score exported hinted colourisers (e.g. the photo recipe trained with `colourgan train --hints`) as
hints_study.py scores its U-Nets: Imagenette validation photos at 96 px (centre crops, all of them unless --n-valid)
with 0, 1, 2, 5, 10 and 20 hints per photo sampled from the truth (seeded, the same for every model), and the
locality of one hint. Results go to --out (a JSON file, one entry per model, kept between runs).

    python examples/studies/hints/score_model.py runs/photos_hints.pkl runs/photos_hints_s43.pkl \\
        --data ../shared/data --out runs/photos_hints_scores.json
"""
import argparse
import json
from pathlib import Path

from colourgan_fastai import imagenette_dls, load_colourizer
from colourgan_fastai.inference import require_hints
from hints_study import HINT_COUNTS, score, locality


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('models', nargs='+', help='exported colourisers (.pkl) trained with hints')
    p.add_argument('--data', default='../shared/data', help='the folder holding imagenette2-160/')
    p.add_argument('--size', type=int, default=96)
    p.add_argument('--n-valid', type=int, help='score the first N validation photos only (default: all)')
    p.add_argument('--out', default='runs/hints_model_scores.json')
    a = p.parse_args()
    dls = imagenette_dls(a.data, n_train=64, size=a.size, bs=32, seed=0, n_valid=a.n_valid)
    out = Path(a.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    for m in a.models:
        model = load_colourizer(m).model
        try: require_hints(model)
        except ValueError as e: raise SystemExit(f"{m}: {e}") from None
        res = {'n_valid': len(dls.valid_ds), 'scores': {n: score(model, dls.valid, n) for n in HINT_COUNTS},
               'locality': locality(model, dls.valid)}
        results[str(m)] = res
        s = res['scores']
        print(f"{m}: " + ', '.join(f"{n} hints {s[n]['psnr']:.2f} dB" for n in HINT_COUNTS) +
              f"; 10 hints {s[10]['psnr'] - s[0]['psnr']:+.2f} dB; far/near {res['locality']['far_over_near']:.3f}",
              flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
