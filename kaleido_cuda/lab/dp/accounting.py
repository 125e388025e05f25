"""Privacy accounting for the mechanisms of this package, through Google's dp-accounting.

Every iteration of DP distribution matching (and every step of DP-SGD) is a Poisson-subsampled
Gaussian mechanism: each training example joins the iteration's batch independently with
probability `sample_rate`, and the released sum of per-example clipped vectors carries Gaussian
noise of standard deviation `noise_multiplier` x clip norm. T iterations compose. The epsilon
that T such steps spend at a given delta comes from an accountant of dp-accounting (never from a
formula written here):
- 'rdp': dp_accounting.rdp.RdpAccountant, Renyi DP (Mironov 2017; Mironov, Talwar and Zhang 2019),
  the accountant Opacus uses by default, so DP-DM and DP-SGD are compared under one analysis;
- 'pld': dp_accounting.pld.PLDAccountant, privacy loss distributions, tighter for the same noise.
Adjacency is add/remove one example. With sample_rate 1 every example is in every iteration and
the event is a plain Gaussian mechanism.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import Optional

ACCOUNTANTS = {"rdp": "dp_accounting.rdp.RdpAccountant (Renyi DP)",
               "pld": "dp_accounting.pld.PLDAccountant (privacy loss distributions)"}


def check_dp_arguments(epsilon: Optional[float], delta: float, clip: Optional[float] = None,
                       sample_rate: Optional[float] = None, accountant: str = "rdp", flag: str = "--dp-") -> None:
    """ValueError naming the first bad DP argument by its command-line flag (`flag` + name; the CLI
    turns it into one line and exit code 2). NaN fails every check."""
    if epsilon is not None and not epsilon > 0:
        raise ValueError(f"{flag}epsilon must be positive, got {epsilon}")
    if not 0 < delta < 1:
        raise ValueError(f"{flag}delta must lie in (0, 1), got {delta}")
    if clip is not None and not clip > 0:
        raise ValueError(f"{flag}clip must be positive, got {clip}")
    if sample_rate is not None and not 0 < sample_rate <= 1:
        raise ValueError(f"{flag}sample-rate must lie in (0, 1], got {sample_rate}")
    if accountant is None:
        return
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant {accountant!r}; choose one of {', '.join(ACCOUNTANTS)}")


@contextlib.contextmanager
def _quiet_absl():
    """dp-accounting's RDP code logs a warning for every fractional Renyi order whose series does
    not converge (it then leaves that order out, which only loosens the bound): hundreds of lines
    per calibration. They are silenced here; errors still show."""
    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _event(noise_multiplier: float, sample_rate: float, steps: int):
    from dp_accounting import dp_event

    gaussian = dp_event.GaussianDpEvent(noise_multiplier)
    one = gaussian if sample_rate >= 1 else dp_event.PoissonSampledDpEvent(sample_rate, gaussian)
    return dp_event.SelfComposedDpEvent(one, steps)


def _accountant(kind: str):
    from dp_accounting import pld, rdp

    return rdp.RdpAccountant() if kind == "rdp" else pld.PLDAccountant()


def epsilon_spent(noise_multiplier: float, sample_rate: float, steps: int, delta: float, kind: str = "rdp") -> float:
    """The epsilon at `delta` of `steps` Poisson-subsampled Gaussian steps (0 for no steps)."""
    if steps == 0:
        return 0.0
    with _quiet_absl():
        accountant = _accountant(kind)
        accountant.compose(_event(noise_multiplier, sample_rate, steps))
        return float(accountant.get_epsilon(delta))


def calibrate_noise(target_epsilon: float, delta: float, sample_rate: float, steps: int, kind: str = "rdp") -> float:
    """The smallest noise multiplier (to dp-accounting's bisection tolerance) for which `steps`
    steps at `sample_rate` spend at most `target_epsilon` at `delta`."""
    import dp_accounting

    check_dp_arguments(target_epsilon, delta, sample_rate=sample_rate, accountant=kind)
    if steps < 1:
        raise ValueError(f"a DP run needs at least one iteration to calibrate its noise, got {steps}")
    if kind == "pld":
        # PLD's discretised losses need memory that grows without bound as the noise goes to 0, so its
        # search starts from RDP's answer, which is never below it (PLD is the tighter analysis).
        upper = calibrate_noise(target_epsilon, delta, sample_rate, steps, "rdp") * 1.01
        bracket = dp_accounting.ExplicitBracketInterval(upper / 4, upper)
    else:
        bracket = dp_accounting.ExplicitBracketInterval(1e-2, 1e4)
    with _quiet_absl():
        return float(dp_accounting.calibrate_dp_mechanism(
            lambda: _accountant(kind), lambda sigma: _event(sigma, sample_rate, steps), target_epsilon, delta,
            bracket, tol=1e-6))


@dataclass
class DPAccountant:
    """The accountant's state of one run: the mechanism (noise multiplier, sample rate) and the
    steps taken so far. It is all the state there is (the epsilon is recomputed from it), so a
    checkpoint that holds state_dict() resumes the accounting exactly."""
    noise_multiplier: float
    sample_rate: float
    delta: float
    kind: str = "rdp"
    steps: int = 0

    @classmethod
    def for_target(cls, target_epsilon: float, delta: float, sample_rate: float, steps: int,
                   kind: str = "rdp") -> "DPAccountant":
        """The accountant of a run calibrated, before it starts, to spend target_epsilon in `steps`."""
        return cls(calibrate_noise(target_epsilon, delta, sample_rate, steps, kind), sample_rate, delta, kind)

    def step(self) -> None:
        self.steps += 1

    def epsilon(self) -> float:
        return epsilon_spent(self.noise_multiplier, self.sample_rate, self.steps, self.delta, self.kind)

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def report(self) -> dict:
        """What a run records: the mechanism, the steps and the epsilon they spent, and which accountant said so."""
        return {**self.state_dict(), "epsilon": self.epsilon(), "accountant": ACCOUNTANTS[self.kind]}
