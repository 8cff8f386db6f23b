"""A short real training run on the embedded photos: the model must beat the grey (ab = 0) baseline."""
from colourgan_fastai import colour_learner, sample_photos_dls, colour_metrics, train_l1_then_gan, score_predictions


def test_short_training_beats_the_grey_baseline():
    dls = sample_photos_dls(size=32, n=640, bs=32)
    learn = colour_learner(dls, arch='resnet20_cifar', pretrained=False, metrics=colour_metrics())
    train_l1_then_gan(learn, epochs=3, gan_epochs=1, lr=3e-3)
    grey = score_predictions(dls.valid, lambda L, ab: ab * 0)
    final = dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1]))
    assert final['valid_loss'] < 0.9 * grey['l1'], (final, grey)
    assert final['colourfulness'] > grey['colourfulness'] + 5          # it actually colours
