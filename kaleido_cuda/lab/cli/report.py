"""The lines `kaleido distill` and `kaleido eval` print from a run's metrics."""
from __future__ import annotations


def print_metrics(out: str, metrics: dict) -> None:
    a, p = metrics["accuracy"], metrics["privacy"]
    print(f"accuracy {100 * a['mean']:.2f} +- {100 * a['std']:.2f} % over {len(a['runs'])} models")
    if "baselines" in metrics:
        b = metrics["baselines"]
        print(f"random real subset {100 * b['random_real']['mean']:.2f} +- {100 * b['random_real']['std']:.2f} %, "
              f"full training set {100 * b['full']['mean']:.2f} %")
    print(f"nearest-neighbour SSIM mean {p['nn_ssim_mean']:.3f} (held-out real images: {p['heldout_nn_ssim_mean']:.3f}), "
          f"max {p['nn_ssim_max']:.3f}, above 0.9: {100 * p['frac_ssim_over_0.9']:.0f}%")
    if "dp" in metrics:
        dp = metrics["dp"]
        print(f"DP-DM: epsilon {dp['epsilon']:.3f} at delta {dp['delta']:g} ({dp['steps']} iterations, noise multiplier "
              f"{dp['noise_multiplier']:.3f}, sample rate {dp['sample_rate']:.3f}; {dp['accountant']})")
    print(f"results in {out}/metrics.json")
