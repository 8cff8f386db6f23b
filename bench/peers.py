"""The peers colourgan_fastai is measured against, written as their authors run them.

1. `tutorial_*`: Shariatnia's (2020) plain-PyTorch loop: a Dataset that converts each image with
   skimage's rgb2lab in __getitem__, a model class whose optimize() does the D step then the G step with
   two Adam optimisers, and its L1 `pretrain_generator` loop.
2. `fastai_gan_learner`: fastai's own GANLearner/GANTrainer with the same G and a D on ab alone (it cannot
   feed the condition L to the critic), alternating one net per batch (FixedGANSwitcher(1, 1)).
3. `floor_*`: a bare loop over tensors already converted and held in memory, same G and D, no data loading and
   no callbacks: what the arithmetic alone costs.
"""
import numpy as np
import torch
from torch import nn
from PIL import Image
from skimage.color import rgb2lab
from torchvision import transforms


# ---------------------------------------------------------------------------------------------- 1. tutorial
class ColorizationDataset(torch.utils.data.Dataset):
    "The tutorial's Dataset: PIL -> resize (+ flip) -> skimage rgb2lab per image -> L/50-1, ab/110."
    def __init__(self, paths, size, split='train'):
        self.transforms = transforms.Compose([transforms.Resize((size, size), Image.BICUBIC),
                                              transforms.RandomHorizontalFlip()]) if split == 'train' else \
            transforms.Resize((size, size), Image.BICUBIC)
        self.paths = paths

    def __getitem__(self, idx):
        img = Image.open(self.paths[idx]).convert('RGB')
        img = np.array(self.transforms(img))
        img_lab = transforms.ToTensor()(rgb2lab(img).astype('float32'))
        return {'L': img_lab[[0], ...] / 50. - 1., 'ab': img_lab[[1, 2], ...] / 110.}

    def __len__(self): return len(self.paths)


def tutorial_dataloader(paths, size, bs, n_workers=4):
    "As the tutorial builds it (n_workers=4, pin_memory=True)."
    return torch.utils.data.DataLoader(ColorizationDataset(paths, size), batch_size=bs, num_workers=n_workers,
                                       pin_memory=torch.cuda.is_available(), shuffle=True, drop_last=True,
                                       persistent_workers=n_workers > 0)


class GANLoss(nn.Module):
    def __init__(self, real_label=1.0, fake_label=0.0):
        super().__init__()
        self.register_buffer('real_label', torch.tensor(real_label))
        self.register_buffer('fake_label', torch.tensor(fake_label))
        self.loss = nn.BCEWithLogitsLoss()
    def __call__(self, preds, target_is_real):
        labels = (self.real_label if target_is_real else self.fake_label).expand_as(preds)
        return self.loss(preds, labels)


class MainModel(nn.Module):
    "The tutorial's model class: setup_input, forward, backward_D, backward_G, optimize."
    def __init__(self, net_G, net_D, lr_G=2e-4, lr_D=2e-4, beta1=0.5, beta2=0.999, lambda_L1=100.):
        super().__init__()
        self.lambda_L1 = lambda_L1
        self.net_G, self.net_D = net_G, net_D
        self.GANcriterion, self.L1criterion = GANLoss(), nn.L1Loss()
        self.opt_G = torch.optim.Adam(self.net_G.parameters(), lr=lr_G, betas=(beta1, beta2))
        self.opt_D = torch.optim.Adam(self.net_D.parameters(), lr=lr_D, betas=(beta1, beta2))

    def set_requires_grad(self, model, requires_grad=True):
        for p in model.parameters(): p.requires_grad = requires_grad

    def setup_input(self, data): self.L, self.ab = data['L'], data['ab']
    def forward(self): self.fake_color = self.net_G(self.L)

    def backward_D(self):
        fake_image = torch.cat([self.L, self.fake_color], dim=1)
        fake_preds = self.net_D(fake_image.detach())
        self.loss_D_fake = self.GANcriterion(fake_preds, False)
        real_image = torch.cat([self.L, self.ab], dim=1)
        real_preds = self.net_D(real_image)
        self.loss_D_real = self.GANcriterion(real_preds, True)
        self.loss_D = (self.loss_D_fake + self.loss_D_real) * 0.5
        self.loss_D.backward()

    def backward_G(self):
        fake_image = torch.cat([self.L, self.fake_color], dim=1)
        fake_preds = self.net_D(fake_image)
        self.loss_G_GAN = self.GANcriterion(fake_preds, True)
        self.loss_G_L1 = self.L1criterion(self.fake_color, self.ab) * self.lambda_L1
        self.loss_G = self.loss_G_GAN + self.loss_G_L1
        self.loss_G.backward()

    def optimize(self):
        self.forward()
        self.net_D.train()
        self.set_requires_grad(self.net_D, True)
        self.opt_D.zero_grad()
        self.backward_D()
        self.opt_D.step()
        self.net_G.train()
        self.set_requires_grad(self.net_D, False)
        self.opt_G.zero_grad()
        self.backward_G()
        self.opt_G.step()


def tutorial_gan_epoch(model, dl, n_batches):
    for i, data in enumerate(dl):
        if i == n_batches: break
        model.setup_input(data)
        model.optimize()


def tutorial_pretrain_epoch(net_G, dl, opt, criterion, n_batches):
    "The tutorial's pretrain_generator loop body for one pass."
    for i, data in enumerate(dl):
        if i == n_batches: break
        L, ab = data['L'], data['ab']
        preds = net_G(L)
        loss = criterion(preds, ab)
        opt.zero_grad(); loss.backward(); opt.step()


# ---------------------------------------------------------------------------------------------- 2. fastai GANLearner
def fastai_gan_learner(dls, G, D_ab, lambda_l1=100.):
    "fastai's GANLearner with the same G; the critic sees ab only. Alternates G and D batches."
    from functools import partial
    from fastai.vision.gan import GANLearner, FixedGANSwitcher
    from fastai.optimizer import Adam
    import torch.nn.functional as F
    def gen_loss(fake_pred, output, target):
        return F.binary_cross_entropy_with_logits(fake_pred, torch.ones_like(fake_pred)) + \
            lambda_l1 * F.l1_loss(output, target)
    def crit_loss(real_pred, fake_pred):
        return 0.5 * (F.binary_cross_entropy_with_logits(real_pred, torch.ones_like(real_pred)) +
                      F.binary_cross_entropy_with_logits(fake_pred, torch.zeros_like(fake_pred)))
    return GANLearner(dls, G, D_ab, gen_loss, crit_loss, switcher=FixedGANSwitcher(n_crit=1, n_gen=1),
                      opt_func=partial(Adam, mom=0.5, sqr_mom=0.999), lr=2e-4, show_img=False)


# ---------------------------------------------------------------------------------------------- 3. the floor
def floor_gan_steps(G, D, L_all, ab_all, bs, n_batches, lambda_l1=100.):
    "Bare D step + G step over in-memory tensors: no Dataset, no callbacks."
    import torch.nn.functional as F
    opt_G = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    def step(L, ab):
        fake = G(L)
        pr, pf = D(torch.cat([L, ab], 1)), D(torch.cat([L, fake.detach()], 1))
        lD = 0.5 * (F.binary_cross_entropy_with_logits(pr, torch.ones_like(pr)) +
                    F.binary_cross_entropy_with_logits(pf, torch.zeros_like(pf)))
        opt_D.zero_grad(); lD.backward(); opt_D.step()
        D.requires_grad_(False)
        p = D(torch.cat([L, fake], 1))
        lG = F.binary_cross_entropy_with_logits(p, torch.ones_like(p)) + lambda_l1 * F.l1_loss(fake, ab)
        D.requires_grad_(True)
        opt_G.zero_grad(); lG.backward(); opt_G.step()
    return step


def floor_l1_step(G, lr=1e-3):
    opt = torch.optim.Adam(G.parameters(), lr)
    def step(L, ab):
        loss = (G(L) - ab).abs().mean()
        opt.zero_grad(); loss.backward(); opt.step()
    return step
