"""How strongly each loss term pulls on the encoder (README, Case 1, step 19): the norm of the gradient that L1,
`feature_distance` and `guidance_kl` each send to the U-Net's pretrained encoder, unweighted, on a few CIFAR-10
training batches, at the start and again after --steps training steps of the recipe's phase 1 (L1 + 0.3 feature +
W class guidance). A term's weight is set so that its weighted gradient is of the order of L1's.

    python bench/gradient_scale.py --data ../shared/data                 # about 1.5 min on 2 cores
"""
import argparse
import itertools
import json
from pathlib import Path

import torch
import torch.nn.functional as F


def parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default='../shared/data')
    p.add_argument('--weights', default='../shared/weights/resnet20-12fca82f.th')
    p.add_argument('--steps', type=int, default=150, help='phase-1 steps between the two measurements')
    p.add_argument('--batches', type=int, default=3, help='batches each measurement averages over')
    p.add_argument('--class-weight', type=float, default=0.1, help='the class term weight the steps train with')
    p.add_argument('--seed', type=int, default=0); p.add_argument('--out', help='also write the results as JSON here')
    return p


def encoder_grad_norms(G, own, layers, L_, ab):
    "{term: norm of the gradient its unweighted value sends to G's encoder} for L1, the feature and the class term."
    from colourgan_fastai.losses import feature_distance, guidance_kl
    enc = list(G.layers[0].parameters())
    pred = G(L_)
    terms = dict(l1=F.l1_loss(pred, ab), feature=feature_distance(own, own.stats, layers, L_, pred, ab),
                 class_kl=guidance_kl(own, own.stats, L_, ab, G.guide.logits))
    out = {}
    for name, t in terms.items():
        grads = torch.autograd.grad(t, enc, retain_graph=True, allow_unused=True)
        out[name] = dict(value=t.item(), grad=torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None)).item())
    return out


def measure(G, own, layers, batches):
    rows = [encoder_grad_norms(G, own, layers, L_, ab) for L_, ab in batches]
    return {k: {m: sum(r[k][m] for r in rows) / len(rows) for m in ('value', 'grad')} for k in rows[0]}


def main(argv=None):
    a = parser().parse_args(argv)
    from colourgan_fastai import cifar10_dls, colour_learner, resnet20_cifar
    from colourgan_fastai.losses import feature_distance, guidance_kl
    torch.manual_seed(a.seed)
    dls = cifar10_dls(a.data, n_train=2048, bs=64, seed=42, n_valid=256)
    G = colour_learner(dls, arch=resnet20_cifar(a.weights), class_guidance=10).model.train()
    own = resnet20_cifar(a.weights).eval().requires_grad_(False)
    layers = [own.layer1, own.layer2, own.layer3]
    fixed = list(itertools.islice(dls.train, a.batches))
    res = {'start': measure(G, own, layers, fixed)}
    opt, it = torch.optim.Adam(G.parameters(), 1e-3), itertools.cycle(dls.train)
    for _ in range(a.steps):
        L_, ab = next(it)
        pred = G(L_)
        loss = (F.l1_loss(pred, ab) + 0.3 * feature_distance(own, own.stats, layers, L_, pred, ab)
                + a.class_weight * guidance_kl(own, own.stats, L_, ab, G.guide.logits))
        opt.zero_grad(); loss.backward(); opt.step()
    res[f'after {a.steps} steps'] = measure(G, own, layers, fixed)
    print('| when | term | value | encoder gradient norm | / L1\'s |\n|---|---|---|---|---|')
    for when, r in res.items():
        for k, v in r.items():
            print(f"| {when} | {k} | {v['value']:.4f} | {v['grad']:.4f} | {v['grad'] / r['l1']['grad']:.1f}× |")
    if a.out: Path(a.out).write_text(json.dumps(res, indent=1))
    return res


if __name__ == '__main__': main()
