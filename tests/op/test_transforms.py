"""kaleido_cuda.transforms.Kaleidoscope: sampling, replay, composition and torch.compile."""
import pytest
import torch

import kaleido_cuda as kc
from conftest import requires_cuda
from kaleido_cuda.transforms import Kaleidoscope


def images(n=4, c=3, h=16, w=12, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_forward_with_params_is_the_op_and_replays_on_a_second_batch():
    m = Kaleidoscope("kt", strength=0.7)
    x1, x2 = images(seed=1), images(seed=2)
    params = m.sample(4, (16, 12), seed=0)
    torch.testing.assert_close(m(x1, params), kc.kaleidoscope(x1, params), atol=0, rtol=0)
    # Replay: the same parameters on another batch give that batch's own result, every time.
    a, b = m(x1, params), m(x2, params)
    assert not torch.equal(a, b)
    torch.testing.assert_close(m(x2, params), b, atol=0, rtol=0)


def test_seed_repeats_and_none_follows_torch_manual_seed():
    m = Kaleidoscope("kt")
    x = images()
    torch.testing.assert_close(m(x, seed=3), m(x, seed=3), atol=0, rtol=0)
    assert not torch.equal(m(x, seed=3), m(x, seed=4))
    torch.manual_seed(0)
    y = m(x)
    torch.manual_seed(0)
    torch.testing.assert_close(m(x), y, atol=0, rtol=0)


def test_strength_zero_is_the_identity():
    x = images()
    torch.testing.assert_close(Kaleidoscope("kt", strength=0.0)(x), x, atol=1e-6, rtol=0)


def test_ranges_override_the_preset():
    m = Kaleidoscope("kt", fold_k=(3, 3), noise=(0.0, 0.0))
    p = m.sample(8, 16, seed=0)
    assert bool((p.fold_k == 3).all()) and bool((p.noise_std == 0).all())
    assert "fold_k=(3, 3)" in repr(m)


def test_dsa_preset_module_matches_the_sampler():
    m = Kaleidoscope("dsa", aug_mode="M", siamese=True)
    p = m.sample(5, 16, seed=1)
    assert p.affine.shape[0] == 1 and p.padding_mode == "zeros"
    x = images(5, 3, 16, 16)
    torch.testing.assert_close(m(x, seed=1), kc.kaleidoscope(x, kc.sample_params(5, "dsa", size=16, seed=1,
                                                                                aug_mode="M", siamese=True)))


def test_composes_with_torchvision_v2():
    v2 = pytest.importorskip("torchvision.transforms.v2")
    m = Kaleidoscope("kt", strength=0.5)
    pipeline = v2.Compose([m, v2.Normalize(mean=[0.5] * 3, std=[0.25] * 3)])
    x = images()
    torch.manual_seed(1)
    y = pipeline(x)
    torch.manual_seed(1)
    torch.testing.assert_close(y, (m(x) - 0.5) / 0.25)


def test_gradients_reach_the_input():
    m = Kaleidoscope("kt")
    x = images().double().requires_grad_()
    params = m.sample(4, (16, 12), seed=5)
    assert torch.autograd.gradcheck(lambda t: m(t, params), (x,))


def test_compiles_without_graph_breaks_when_params_are_given():
    m = Kaleidoscope("kt")
    x = images()
    params = m.sample(4, (16, 12), seed=0)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, params), m(x, params), atol=0, rtol=0)


def test_an_unpickled_module_samples_where_no_module_was_built(monkeypatch):
    # Unpickling (torch.load of a saved model, a spawned DataLoader worker) skips __init__: the
    # sampler that runs outside torch.compile graphs must still be there at the first forward.
    import pickle

    from kaleido_cuda import transforms

    m = Kaleidoscope("kt", strength=0.5)
    monkeypatch.setattr(transforms, "_sample_outside_graph", None)  # a process that only unpickled it
    restored = pickle.loads(pickle.dumps(m))
    x = images()
    torch.testing.assert_close(restored(x, seed=3), m(x, seed=3), atol=0, rtol=0)


def test_compiled_module_also_samples():
    m = Kaleidoscope("kt")
    compiled = torch.compile(m, backend="aot_eager")
    x = images()
    torch.testing.assert_close(compiled(x, seed=2), m(x, seed=2), atol=0, rtol=0)


@pytest.mark.cuda
@requires_cuda
def test_cpu_params_are_moved_to_the_images_device():
    m = Kaleidoscope("kt")
    x = images()
    params = m.sample(4, (16, 12), seed=0)
    torch.testing.assert_close(m(x.cuda(), params).cpu(), m(x, params), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kwargs", [dict(preset="nope"), dict(strength=1.5), dict(rotatee=10.0),
                                    dict(preset="dsa", strength=0.5)])
def test_bad_construction_fails_early(kwargs):
    with pytest.raises(ValueError):
        Kaleidoscope(**kwargs)


def test_bad_calls_raise_clear_errors():
    m = Kaleidoscope("kt")
    with pytest.raises(ValueError, match="batched"):
        m(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="not both"):
        m(images(), m.sample(4, (16, 12)), seed=1)
