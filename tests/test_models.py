import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from colourgan_fastai import resnet20_cifar, colour_learner, PatchDiscriminator

from colourgan_fastai.models import colour_unet, patch_layers_for

from colourgan_fastai.encoders import encoder_body, adapt_first_conv, CifarResNet
from colourgan_fastai.encoders import IMAGENET_STATS

CIFAR_CLASSES = 'airplane automobile bird cat deer dog frog horse ship truck'.split()


def _cifar_test_batch(shared, per_class=20):
    xs, ys = [], []
    for i, c in enumerate(CIFAR_CLASSES):
        for f in sorted((shared / 'data/cifar10/test' / c).glob('*'))[:per_class]:
            xs.append(torch.tensor(np.asarray(Image.open(f).convert('RGB')), dtype=torch.float32).permute(2, 0, 1) / 255)
            ys.append(i)
    return torch.stack(xs), torch.tensor(ys)


def test_akamaster_resnet20_checkpoint_classifies_cifar(shared):
    model = resnet20_cifar(shared / 'weights/resnet20-12fca82f.th').eval()
    x, y = _cifar_test_batch(shared)
    m, s = (torch.tensor(v).view(1, 3, 1, 1) for v in model.stats)
    with torch.no_grad(): acc = (model((x - m) / s).argmax(1) == y).float().mean().item()
    # 91.8 % published on the PNG test set; on these JPEG re-encodings we measured 81.0 % over all 5,000
    assert acc > 0.75, acc


def test_chenyaofo_format_loads(tmp_path):
    src = CifarResNet(option='B')
    state = {k.replace('.shortcut.', '.downsample.').replace('linear.', 'fc.'): v for k, v in src.state_dict().items()}
    torch.save(state, tmp_path / 'c.pt')
    model = resnet20_cifar(tmp_path / 'c.pt')
    assert isinstance(model.layer2[0].shortcut, nn.Sequential)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model.eval()(x), src.eval()(x))


def test_wrong_checkpoint_names_the_keys(tmp_path):
    torch.save(torchvision.models.mobilenet_v2().state_dict(), tmp_path / 'm.pth')
    with pytest.raises(ValueError, match=r"missing keys \['conv1.weight'.*unexpected keys \['features"):
        resnet20_cifar(tmp_path / 'm.pth')
    with pytest.raises(FileNotFoundError): resnet20_cifar(tmp_path / 'nope.th')
    with pytest.raises(ValueError, match='does not fit'):
        encoder_body('resnet18', pretrained=False, weights=tmp_path / 'm.pth')


def test_first_conv_folds_rgb_weights_for_grey_input():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    new = adapt_first_conv(conv, IMAGENET_STATS)
    g = torch.rand(1, 1, 10, 10)                                    # a grey image, values in [0, 1]
    m, s = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET_STATS)
    ref = conv((g.expand(1, 3, 10, 10) - m) / s)
    out = new(2 * g - 1)                                            # the network's input for that grey level
    assert torch.allclose(out[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-5)   # interior: exact
    fresh = adapt_first_conv(conv, pretrained=False)
    assert fresh.in_channels == 1


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown arch 'resnet1000'.*resnet18"): encoder_body('resnet1000')
    with pytest.raises(TypeError): encoder_body(42)


@pytest.mark.parametrize('arch,size', [('resnet20_cifar', 32), ('resnet18', 64), ('mobilenet_v2', 96)])
def test_colour_unet_maps_L_to_ab_in_range(arch, size):
    u = colour_unet(arch, size, pretrained=False).eval()
    out = u(torch.randn(2, 1, size, size))
    assert out.shape == (2, 2, size, size) and out.abs().max() <= 1
    assert u(torch.randn(1, 1, size + 32, size)).shape == (1, 2, size + 32, size)     # fully convolutional


def test_pretrained_torchvision_weights_load_offline(tmp_path, monkeypatch):
    # what torchvision would download: put a known state dict in the cache and check it is the one used
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    ref = torchvision.models.resnet18()
    w = torchvision.models.ResNet18_Weights.DEFAULT
    cache = tmp_path / 'hub' / 'checkpoints'; cache.mkdir(parents=True)
    torch.save(ref.state_dict(), cache / w.url.split('/')[-1])
    body = encoder_body(torchvision.models.resnet18, pretrained=True)
    assert torch.equal(body[4][0].conv1.weight, ref.layer1[0].conv1.weight)
    assert torch.allclose(body[0].weight, adapt_first_conv(ref.conv1).weight)


def test_mobilenet_v2_from_weights_file_is_cut_before_the_1280_conv(shared):
    body = encoder_body('mobilenet_v2', pretrained=False, weights=shared / 'weights/mobilenet_v2_imagenet.pth')
    assert body(torch.randn(1, 1, 96, 96)).shape[1] == 320
    ref = torchvision.models.mobilenet_v2()
    ref.load_state_dict(torch.load(shared / 'weights/mobilenet_v2_imagenet.pth'))
    assert torch.equal(body[1].conv[0][0].weight, ref.features[1].conv[0][0].weight)


def test_colour_learner_takes_a_module_and_trains_everything(tiny_dls, shared):
    learn = colour_learner(tiny_dls, arch=resnet20_cifar(shared / 'weights/resnet20-12fca82f.th'))
    assert learn.model.img_size == (32, 32)
    learn.create_opt()
    assert all(p.requires_grad for p in learn.model.parameters())
    assert len(learn.opt.param_groups) == 2                                    # encoder / decoder


@pytest.mark.parametrize('size,n_layers,patch', [(32, 2, 6), (64, 3, 6), (96, 3, 10), (256, 3, 30)])
def test_patch_discriminator_keeps_a_patch_map(size, n_layers, patch):
    assert patch_layers_for(size) == n_layers
    D = PatchDiscriminator(img_size=size)
    assert D(torch.randn(2, 3, size, size)).shape == (2, 1, patch, patch)


def test_patch_discriminator_options():
    D = PatchDiscriminator(n_layers=2, spectral=True, norm='instance')
    assert any(hasattr(m, 'weight_orig') for m in D.modules())                 # spectral norm applied
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    assert not isinstance(D[1], (nn.BatchNorm2d, nn.InstanceNorm2d))          # C64 has no norm
    with pytest.raises(ValueError): PatchDiscriminator(norm='group')
    with pytest.raises(ValueError): PatchDiscriminator(n_layers=0)
