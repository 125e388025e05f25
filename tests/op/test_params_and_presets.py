"""KTParams helpers and the parameter samplers."""
import dataclasses

import pytest
import torch

import kaleido_cuda as kc


def test_identity_replace_and_to():
    p = kc.KTParams.identity(4)
    assert p.affine.shape == (4, 2, 3) and p.fold_k.dtype == torch.int64
    q = dataclasses.replace(p, padding_mode="border", seed=3)
    assert q.padding_mode == "border" and q.seed == 3 and q.affine is p.affine
    moved = p.to("cpu")
    assert all(t.device.type == "cpu" for t in moved.tensors())


def test_to_keeps_every_field_shape_and_dtype():
    # Mixed row counts and dtypes, as the samplers produce; 'meta' stands in for a GPU here.
    p = kc.sample_params(5, "dsa", size=16, seed=0, aug_mode="M")
    p.noise_std = torch.full((5,), 0.25, dtype=torch.float64)
    moved = p.to("meta")
    for name, before, after in zip(kc.params.TENSOR_FIELDS, p.tensors(), moved.tensors()):
        assert after.device.type == "meta", name
        assert (after.shape, after.dtype) == (before.shape, before.dtype), name
    assert (moved.seed, moved.padding_mode) == (p.seed, p.padding_mode)


def test_build_info():
    info = kc.build_info()
    for key in ("cuda_compiled", "cuda_available", "torch", "cuda_arch_list"):
        assert key in info
    assert info["compiled"] and info["torch"] == torch.__version__


@pytest.mark.parametrize("preset", ["kt", "dsa"])
def test_same_seed_same_params(preset):
    a = kc.sample_params(6, preset, size=16, seed=5)
    b = kc.sample_params(6, preset, size=16, seed=5)
    for ta, tb in zip(a.tensors(), b.tensors()):
        torch.testing.assert_close(ta, tb, atol=0, rtol=0)
    assert a.seed == b.seed
    c = kc.sample_params(6, preset, size=16, seed=6)
    assert any(not torch.equal(ta, tc) for ta, tc in zip(a.tensors(), c.tensors()))


def test_kt_strength_zero_is_identity():
    x = torch.randn(3, 3, 12, 12, dtype=torch.float64)
    p = kc.sample_params(3, "kt", size=12, seed=1, strength=0.0)
    torch.testing.assert_close(kc.kaleidoscope(x, p), x, atol=1e-6, rtol=0)


def test_kt_preset_perturbs_strongly():
    x = torch.rand(16, 3, 32, 32)
    p = kc.sample_params(16, "kt", size=32, seed=0)
    assert p.padding_mode == "reflection" and bool((p.fold_k >= 2).all())
    y = kc.kaleidoscope(x, p)
    assert float((y - x).abs().mean()) > 0.2


def test_dsa_siamese_shares_one_row():
    p = kc.sample_params(8, "dsa", size=32, seed=3, siamese=True, aug_mode="M")
    assert all(t.shape[0] == 1 for t in p.tensors())
    assert p.padding_mode == "zeros"


def test_dsa_mode_s_applies_one_family():
    for family in ("color", "crop", "cutout", "flip", "scale", "rotate"):
        p = kc.sample_params(8, "dsa", size=32, seed=1, family=family)
        ident = kc.KTParams.identity(1)
        changed = {name for name in ("affine", "brightness", "saturation", "contrast", "cutout")
                   if not torch.equal(getattr(p, name), getattr(ident, name).expand_as(getattr(p, name)))}
        expected = {"color": {"brightness", "saturation", "contrast"}, "cutout": {"cutout"}}.get(family, {"affine"})
        assert changed == expected, family


def test_dsa_crop_is_an_integer_translation_with_zero_fill():
    x = torch.rand(4, 1, 16, 16) + 1
    p = kc.sample_params(4, "dsa", size=16, seed=2, family="crop")
    y = kc.kaleidoscope(x, p)
    for n in range(4):
        tx = round(float(p.affine[n, 0, 2]) * 8)
        ty = round(float(p.affine[n, 1, 2]) * 8)
        shifted = torch.zeros(16, 16)
        for i in range(16):
            for j in range(16):
                if 0 <= i + ty < 16 and 0 <= j + tx < 16:
                    shifted[i, j] = x[n, 0, i + ty, j + tx]
        torch.testing.assert_close(y[n, 0], shifted, atol=1e-5, rtol=0)


def test_kt_views_draw_independent_rows_and_one_view_draws_what_it_always_did():
    one = kc.sample_params(4, "kt", size=16, seed=5)
    same = kc.sample_params(4, "kt", size=16, seed=5, views=1)
    three = kc.sample_params(4, "kt", size=16, seed=5, views=3)
    assert all(torch.equal(getattr(one, k), getattr(same, k)) for k in kc.params.TENSOR_FIELDS) and one.seed == same.seed
    assert one.views == 1 and three.views == 3 and three.affine.shape == (12, 2, 3)
    assert len({tuple(r.flatten().tolist()) for r in three.affine}) == 12  # every view its own draw
    y = kc.kaleidoscope(torch.rand(4, 3, 16, 16), three)
    assert y.shape == (4, 3, 16, 16)


def test_kt_families_switch_off_alone_and_leave_the_others_draws_unchanged():
    every = kc.sample_params(6, "kt", size=16, seed=8)
    no_fold = kc.sample_params(6, "kt", size=16, seed=8, families="warp,colour,noise")
    only_noise = kc.sample_params(6, "kt", size=16, seed=8, families=("noise",))
    assert int(no_fold.fold_k.abs().sum()) == 0 and int(every.fold_k.abs().sum()) > 0
    for k in ("affine", "brightness", "saturation", "contrast", "noise_std"):
        assert torch.equal(getattr(no_fold, k), getattr(every, k)), k
    identity = kc.KTParams.identity(6)
    for k in ("affine", "fold_k", "brightness", "saturation", "contrast"):
        assert torch.equal(getattr(only_noise, k), getattr(identity, k).to(getattr(only_noise, k).dtype)), k
    assert torch.equal(only_noise.noise_std, every.noise_std)
    with pytest.raises(ValueError, match="unknown KT family blur; choose from warp, fold, colour, noise"):
        kc.sample_params(2, "kt", size=8, families="warp,blur")


@pytest.mark.parametrize("bad", [dict(preset="nope"), dict(strength=2.0), dict(rotatee=3.0), dict(size=0),
                                 dict(views=0), dict(views=2.0), dict(preset="dsa", views=2)])
def test_sampler_rejects_bad_arguments(bad):
    kwargs = dict(preset="kt", size=8)
    kwargs.update(bad)
    with pytest.raises(ValueError):
        kc.sample_params(2, **kwargs)


def test_tune_cpu_allocator_accepts_glibc_and_rejects_bad_sizes():
    import platform

    ok = kc.tune_cpu_allocator()
    assert isinstance(ok, bool)
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert ok
    with pytest.raises(ValueError, match="mmap_mb"):
        kc.tune_cpu_allocator(mmap_mb=64)
    with pytest.raises(ValueError, match="trim_mb"):
        kc.tune_cpu_allocator(trim_mb=0)
