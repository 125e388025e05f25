"""K models trained together (kaleido_cuda.batched) equal K models trained one after another."""
import pytest
import torch

from conftest import tiny_classes
from kaleido_cuda.batched import train_models
from kaleido_cuda.evaluate import EvalConfig, train_model


def _same(a, b, atol):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=atol, rtol=1e-4, msg=f"{name} differs")


@pytest.mark.parametrize("augment", [True, False])
def test_batched_training_equals_one_by_one(augment):
    images, labels = tiny_classes(n_per_class=7, classes=3, size=16)
    cfg = EvalConfig(model="convnet", width=16, epochs=4, batch_size=8, augment=augment, lr=0.05)
    seeds = [3, 11, 5]
    subsets = torch.stack([torch.randperm(len(images), generator=torch.Generator().manual_seed(s))[:15] for s in seeds])
    together = train_models(images, labels, 3, cfg, seeds, subsets=subsets)
    for k, seed in enumerate(seeds):
        alone = train_model(images[subsets[k]], labels[subsets[k]], 3, cfg, seed)
        _same(together[k], alone, atol=1e-5)
    # The models really differ from one another (own initialisation, order and draws).
    assert not torch.allclose(together[0].classifier.weight, together[1].classifier.weight)


def test_batched_training_leaves_the_global_rng_alone_and_refuses_batch_norm():
    images, labels = tiny_classes(n_per_class=4, classes=2, size=16)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train_models(images, labels, 2, EvalConfig(width=8, epochs=1, batch_size=4), [0, 1])
    assert torch.equal(torch.get_rng_state(), before)
    with pytest.raises(ValueError, match="buffers"):
        train_models(images, labels, 2, EvalConfig(model="convnet_bn", width=8, epochs=1), [0, 1])
    with pytest.raises(ValueError, match="subsets"):
        train_models(images, labels, 2, EvalConfig(width=8, epochs=1), [0, 1], subsets=torch.zeros(3, 2).long())
