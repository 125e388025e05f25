"""The DSA drop-in: DSA's semantics per op family, seeds and siamese batches, modes S and M,
gradients, and the eager switch. The eager chain (kaleido_cuda.dsa.eager) is first pinned to DSA's
semantics written out here by hand, then the fused path is compared with it on the same draw."""
import math

import pytest
import torch
import torch.nn.functional as F

from kaleido_cuda import dsa, kaleidoscope
from kaleido_cuda.dsa import eager as dsa_eager, sampling as dsa_sampling

FAMILIES = dsa_sampling.DSA_FAMILIES


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(1234)  # seed -1 draws follow the global RNG: make every test repeatable


def smooth_images(n, c, h, w, seed=0):
    """Images with structure at several scales, so interpolation differences stay small."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, c, max(h // 4, 2), max(w // 4, 2), generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) + 0.05 * torch.rand(n, c, h, w, generator=g)


def param(mode="S", **changes):
    p = dsa.ParamDiffAug()
    p.aug_mode = mode
    for k, v in changes.items():
        setattr(p, k, v)
    return p


def one_family(family, n=6, size=(13, 17), seed=-1, **changes):
    return dsa.draw_params(n, size, seed=seed, param=param(**changes), family=family)


# --- the eager chain against DSA's semantics, written out per pixel -------------------------------

def test_eager_crop_is_an_integer_shift_with_zero_fill():
    x = torch.rand(6, 2, 13, 17) + 1
    d = one_family("crop")
    v = d.steps[0].values
    y = dsa_eager.apply(x, d)
    for n in range(6):
        ty, tx = int(v["ty"][n]), int(v["tx"][n])
        want = torch.zeros(2, 13, 17)
        for i in range(13):
            for j in range(17):
                if 0 <= i + ty < 13 and 0 <= j + tx < 17:
                    want[:, i, j] = x[n, :, i + ty, j + tx]
        torch.testing.assert_close(y[n], want, atol=0, rtol=0)


def test_eager_cutout_zeroes_the_clipped_square():
    x = torch.rand(6, 3, 13, 17) + 1
    d = one_family("cutout")
    v = d.steps[0].values
    side_h, side_w = int(13 * 0.5 + 0.5), int(17 * 0.5 + 0.5)
    y = dsa_eager.apply(x, d)
    for n in range(6):
        y0, x0 = int(v["y0"][n]), int(v["x0"][n])
        assert int(v["y1"][n]) - y0 == side_h and int(v["x1"][n]) - x0 == side_w
        hole = torch.zeros(13, 17, dtype=torch.bool)
        hole[max(y0, 0):max(y0 + side_h, 0), max(x0, 0):max(x0 + side_w, 0)] = True
        assert hole.any()  # the centre is inside the image (or one past it): never empty
        torch.testing.assert_close(y[n], torch.where(hole, 0.0, x[n]), atol=0, rtol=0)


def test_eager_flip_is_left_right():
    x = torch.rand(8, 3, 5, 7)
    d = one_family("flip", n=8, size=(5, 7))
    flipped = d.steps[0].values["flip"]
    y = dsa_eager.apply(x, d)
    for n in range(8):
        torch.testing.assert_close(y[n], x[n].flip(-1) if flipped[n] else x[n], atol=0, rtol=0)


def test_eager_colour_is_brightness_then_saturation_then_contrast():
    x = torch.rand(4, 3, 6, 5, dtype=torch.float64)
    d = one_family("color", n=4, size=(6, 5))
    v = d.steps[0].values
    y = dsa_eager.apply(x, d)
    for n in range(4):
        p = x[n] + v["brightness"][n]
        p = (p - p.mean(0, keepdim=True)) * v["saturation"][n] + p.mean(0, keepdim=True)
        p = (p - p.mean()) * v["contrast"][n] + p.mean()
        torch.testing.assert_close(y[n], p)


@pytest.mark.parametrize("family", ["scale", "rotate"])
def test_eager_scale_and_rotate_use_dsa_align_corners_true_theta(family):
    x = torch.rand(5, 2, 11, 14, dtype=torch.float64)
    d = one_family(family, n=5, size=(11, 14))
    v = d.steps[0].values
    for n in range(5):
        if family == "scale":
            theta = [[float(v["sx"][n]), 0.0, 0.0], [0.0, float(v["sy"][n]), 0.0]]
        else:
            t = float(v["theta"][n])
            assert abs(t) <= 15 * math.pi / 180
            theta = [[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0]]
        grid = F.affine_grid(torch.tensor([theta], dtype=torch.float64), [1, 2, 11, 14], align_corners=True)
        want = F.grid_sample(x[n:n + 1], grid, align_corners=True)[0]
        torch.testing.assert_close(dsa_eager.apply(x[n:n + 1], dsa_sampling.DSADraw(
            (dsa_sampling.DSAStep(family, {k: t[n:n + 1] for k, t in v.items()}),), 1, (11, 14))), want[None])


# --- fused against eager, same draw ----------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [(32, 32), (13, 17)])
def test_fused_equals_eager_for_each_family_in_mode_s(family, size):
    x = smooth_images(8, 3, *size).requires_grad_()
    d = one_family(family, n=8, size=size)
    fused = kaleidoscope(x, dsa_sampling.compose(d))
    eager = dsa_eager.apply(x, d)
    # Whole-pixel families agree to rounding: on sizes that are not powers of two, source
    # coordinates land 1e-15 from whole pixels, so a neighbour tap can get a weight of 1e-15.
    exact = family in ("crop", "cutout", "flip")
    tol = dict(atol=1e-6, rtol=0) if exact else dict(atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(fused, eager, **tol)
    g = torch.randn_like(fused)
    (grad_fused,) = torch.autograd.grad(fused, x, g)
    (grad_eager,) = torch.autograd.grad(eager, x, g)
    torch.testing.assert_close(grad_fused, grad_eager, **(tol if exact else dict(atol=5e-5, rtol=1e-4)))


def test_mode_m_without_resampling_families_is_exact():
    x = smooth_images(16, 3, 16, 16)
    d = dsa.draw_params(16, (16, 16), "color_crop_cutout_flip", param=param("M"))
    assert [s.family for s in d.steps] == ["color", "crop", "cutout", "flip"]
    torch.testing.assert_close(kaleidoscope(x, dsa_sampling.compose(d)), dsa_eager.apply(x, d), atol=1e-6, rtol=0)


def test_mode_m_full_strategy_is_close_to_the_eager_chain():
    # One resampling instead of two, and no re-clipping between geometric ops (docs/dsa.md): small
    # differences on most pixels, larger ones only along the borders of the frame.
    x = smooth_images(64, 3, 32, 32)
    d = dsa.draw_params(64, (32, 32), param=param("M"))
    diff = (kaleidoscope(x, dsa_sampling.compose(d)) - dsa_eager.apply(x, d)).abs()
    assert float(diff.mean()) < 0.05
    assert float(diff[..., 6:-6, 6:-6].median()) < 1e-2


# --- DiffAugment: seeds, siamese batches, modes, statistics ----------------------------------------

def test_same_seed_same_augmentation_for_real_and_synthetic_batches():
    real = smooth_images(10, 3, 16, 16, seed=1)
    syn = real[:3].clone()  # a different batch size, and images equal to the first three
    for mode in "SM":
        p = param(mode)
        for seed in (0, 7, 123456):
            a = dsa.DiffAugment(real, seed=seed, param=p)
            b = dsa.DiffAugment(syn, seed=seed, param=p)
            torch.testing.assert_close(a[:3], b, atol=0, rtol=0)
            assert p.batchmode and p.latestseed == seed


def test_seeded_call_shares_one_draw_across_the_batch():
    x = smooth_images(1, 3, 16, 16).expand(6, 3, 16, 16).contiguous()
    y = dsa.DiffAugment(x, seed=5, param=param("M"))
    for n in range(1, 6):
        torch.testing.assert_close(y[n], y[0], atol=0, rtol=0)


def test_seed_minus_one_draws_per_sample_and_follows_torch_manual_seed():
    x = smooth_images(1, 3, 16, 16).expand(32, 3, 16, 16).contiguous()
    p = param("M")
    torch.manual_seed(0)
    y1 = dsa.DiffAugment(x, seed=-1, param=p)
    assert not p.batchmode
    assert len({tuple(row.flatten()[:64].tolist()) for row in y1}) > 20  # samples differ
    torch.manual_seed(0)
    torch.testing.assert_close(dsa.DiffAugment(x, seed=-1, param=p), y1, atol=0, rtol=0)


def test_seeded_call_does_not_touch_torch_global_rng():
    # DSA's own DiffAugment reseeds the global RNG when given a seed; the drop-in leaves it alone.
    x = torch.rand(2, 3, 8, 8)
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    dsa.DiffAugment(x, seed=11, param=param("M"))
    torch.testing.assert_close(torch.rand(4), expected, atol=0, rtol=0)


def test_mode_s_picks_one_family_per_call_with_all_families_used():
    seen = set()
    for seed in range(60):
        d = dsa.draw_params(4, (16, 16), seed=seed, param=param("S"))
        assert len(d.steps) == 1
        seen.add(d.steps[0].family)
    assert seen == set(FAMILIES)


def test_mode_m_statistics():
    n, size = 4000, 32
    d = dsa.draw_params(n, (size, size), param=param("M"))
    assert [s.family for s in d.steps] == list(FAMILIES)
    v = {s.family: s.values for s in d.steps}
    assert abs(float(v["flip"]["flip"].double().mean()) - 0.5) < 0.04
    shift = int(size * 0.125 + 0.5)
    for key in ("ty", "tx"):
        assert set(v["crop"][key].tolist()) == set(range(-shift, shift + 1))
    side = v["cutout"]["y1"] - v["cutout"]["y0"]
    assert bool((side == 16).all()) and bool(((v["cutout"]["x1"] - v["cutout"]["x0"]) == 16).all())
    centre = v["cutout"]["y0"] + 8
    assert int(centre.min()) == 0 and int(centre.max()) == size  # an even side may centre one past the end
    for key in ("sx", "sy"):
        assert 1 / 1.2 <= float(v["scale"][key].min()) and float(v["scale"][key].max()) <= 1.2
    assert float(v["rotate"]["theta"].abs().max()) <= 15 * math.pi / 180
    b, s, c = (v["color"][k] for k in ("brightness", "saturation", "contrast"))
    assert -0.5 <= float(b.min()) and float(b.max()) <= 0.5 and abs(float(b.mean())) < 0.03
    assert 0 <= float(s.min()) and float(s.max()) <= 2 and 0.5 <= float(c.min()) and float(c.max()) <= 1.5


def test_mode_m_statistics_seen_in_the_images():
    # Cutout through the fused op: each image loses exactly the clipped 16 x 16 square of its draw.
    x = torch.ones(512, 1, 32, 32)
    d = dsa.draw_params(512, (32, 32), "cutout", param=param("M"))
    v = d.steps[0].values
    clipped = ((v["y1"].clamp(0, 32) - v["y0"].clamp(0, 32)) * (v["x1"].clamp(0, 32) - v["x0"].clamp(0, 32)))
    zeros = (kaleidoscope(x, dsa_sampling.compose(d)) == 0).sum(dim=(1, 2, 3))
    torch.testing.assert_close(zeros, clipped, atol=0, rtol=0)
    assert int(zeros.max()) == 256 and int(zeros.min()) >= 64
    # Flip on a ramp: about half of the images come out reversed.
    ramp = torch.arange(8.0).expand(1000, 1, 4, 8).contiguous()
    y = dsa.DiffAugment(ramp, "flip", param=param("M"))
    reversed_ = (y[:, 0, 0, 0] == 7).float().mean()
    assert abs(float(reversed_) - 0.5) < 0.05


def test_gradients_reach_the_input_in_float64():
    x = smooth_images(3, 2, 7, 6).double().requires_grad_()
    for mode in "SM":
        for seed in (0, 1, 2):
            p = param(mode, ratio_cutout=0.3)
            assert torch.autograd.gradcheck(lambda t: dsa.DiffAugment(t, seed=seed, param=p), (x,))


def test_eager_switch_gives_the_same_augmentation_in_mode_s():
    x = smooth_images(8, 3, 16, 16)
    for seed in range(12):
        a = dsa.DiffAugment(x, seed=seed, param=param("S"))
        b = dsa.DiffAugment(x, seed=seed, param=param("S"), impl="eager")
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)


def test_none_strategy_returns_the_input():
    x = torch.rand(2, 3, 8, 8)
    for strategy in ("", "none", "None"):
        assert dsa.DiffAugment(x, strategy, seed=-1, param=param()) is x


def test_a_distillation_style_step_runs_unchanged():
    # What DC/DSA/DM code does each step: augment real and synthetic batches with one seed, embed,
    # match, and step the synthetic images.
    from kaleido_cuda.dsa import DiffAugment, ParamDiffAug

    class Args:
        dsa_strategy = "color_crop_cutout_flip_scale_rotate"
        dsa_param = ParamDiffAug()

    args = Args()
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    img_real = smooth_images(32, 3, 16, 16)
    img_syn = smooth_images(4, 3, 16, 16, seed=9).requires_grad_()
    opt = torch.optim.SGD([img_syn], lr=1.0)
    losses = []
    for it in range(5):
        seed = 1000 + it
        real = DiffAugment(img_real, args.dsa_strategy, seed=seed, param=args.dsa_param)
        syn = DiffAugment(img_syn, args.dsa_strategy, seed=seed, param=args.dsa_param)
        loss = ((net(real).mean(0) - net(syn).mean(0)) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        assert img_syn.grad is not None and float(img_syn.grad.abs().sum()) > 0
        opt.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses)


# --- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(strategy="color_blur"), "unknown DSA strategy"),
    (dict(seed=-2), "seed"),
    (dict(seed=1.5), "seed"),
    (dict(impl="cuda"), "impl"),
    (dict(param=param(aug_mode="X")), "aug_mode"),
    (dict(param=param(ratio_scale=-1.0)), "ratio_scale"),
    (dict(param=param(prob_flip=2.0)), "prob_flip"),
    (dict(param=param(brightness=float("nan"))), "brightness"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        dsa.DiffAugment(torch.rand(2, 3, 8, 8), **kwargs)


def test_non_batched_input_is_rejected():
    with pytest.raises(ValueError, match="4-D"):
        dsa.DiffAugment(torch.rand(3, 8, 8))


def test_param_defaults_are_dsa_s():
    p = dsa.ParamDiffAug()
    assert (p.aug_mode, p.prob_flip, p.ratio_scale, p.ratio_rotate, p.ratio_crop_pad, p.ratio_cutout,
            p.brightness, p.saturation, p.contrast) == ("S", 0.5, 1.2, 15.0, 0.125, 0.5, 1.0, 2.0, 0.5)
