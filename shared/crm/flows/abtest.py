"""A/B splits: how likely each path of a random split is the best, and when one has won (docs/flow-stats.md).

Each path's rate on the split's metric (conversions, clicks or opens per recipient) gets a uniform prior,
so after ``successes`` out of ``trials`` its posterior is Beta(1 + successes, 1 + trials - successes) (the
Beta-binomial model). The probability that a path is the best is the probability that its rate exceeds every
other path's under these independent posteriors:

- two paths: exact, by Evan Miller's closed form ("Formulas for Bayesian A/B testing", 2015), a sum of
  ``successes + 1`` terms of the smaller side (up to EXACT_TERMS_LIMIT terms);
- otherwise: P(path k is best) = integral over x of f_k(x) * prod_{j != k} F_j(x), with the exact Beta
  densities f_j evaluated on a grid of GRID points spanning every posterior's mass (12 standard deviations
  either side of its mean, within [0, 1]) and their CDFs F_j accumulated on the same grid (midpoint rule).
  Milliseconds, and the same answer every time: the flows service asks it at a split for each run until
  there is a winner. ``sampled`` (seeded Monte Carlo) is the independent check the tests hold it to.

A path of weight 0 receives no runs: it takes no part (probability 0). Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from crm.models.flows import RandomSplit, WinnerRule

# The exact two-path sum has one term per success of the smaller side: beyond this, integrating is cheaper.
EXACT_TERMS_LIMIT = 5_000
GRID = 2_000
_SPAN = 12  # standard deviations either side of each posterior's mean


@dataclass(frozen=True)
class Arm:
    """One path's evidence: recipients (``trials``) and how many of them did the metric (``successes``)."""

    trials: int
    successes: int

    def __post_init__(self) -> None:
        if self.trials < 0 or self.successes < 0:
            raise ValueError("an arm's trials and successes are counts (>= 0)")

    @property
    def alpha(self) -> int:
        return 1 + min(self.successes, self.trials)

    @property
    def beta(self) -> int:
        return 1 + self.trials - min(self.successes, self.trials)


def probability_best(arms: Sequence[Arm]) -> tuple[float, ...]:
    """For each arm, the posterior probability that its rate is the highest (the probabilities sum to 1)."""
    if not arms:
        return ()
    if len(arms) == 1:
        return (1.0,)
    if len(arms) == 2 and min(arms[0].alpha, arms[1].alpha) <= EXACT_TERMS_LIMIT:
        second = _probability_greater(arms[1], arms[0]) if arms[1].alpha <= arms[0].alpha else (
            1.0 - _probability_greater(arms[0], arms[1]))
        second = min(1.0, max(0.0, second))
        return (1.0 - second, second)
    return _integrated(arms)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _probability_greater(b: Arm, a: Arm) -> float:
    """P(rate_b > rate_a), summed over ``b.alpha`` terms (Miller's formula)."""
    base = _log_beta(a.alpha, a.beta)
    total = 0.0
    for i in range(b.alpha):
        total += math.exp(_log_beta(a.alpha + i, a.beta + b.beta) - math.log(b.beta + i)
                          - _log_beta(1 + i, b.beta) - base)
    return total


def _integrated(arms: Sequence[Arm]) -> tuple[float, ...]:
    low, high = 1.0, 0.0
    for arm in arms:
        total = arm.alpha + arm.beta
        mean = arm.alpha / total
        spread = _SPAN * math.sqrt(arm.alpha * arm.beta / (total * total * (total + 1)))
        low, high = min(low, mean - spread), max(high, mean + spread)
    low, high = max(low, 0.0), min(high, 1.0)
    step = (high - low) / GRID
    grid = [low + (index + 0.5) * step for index in range(GRID)]
    densities, cdfs = [], []
    for arm in arms:
        base = _log_beta(arm.alpha, arm.beta)
        density = [math.exp((arm.alpha - 1) * math.log(x) + (arm.beta - 1) * math.log1p(-x) - base) * step
                   for x in grid]
        cumulative, running = [], 0.0
        for mass in density:
            cumulative.append(running + mass / 2)
            running += mass
        densities.append(density)
        cdfs.append(cumulative)
    weights = [sum(densities[k][index] * math.prod(cdfs[j][index] for j in range(len(arms)) if j != k)
                   for index in range(GRID)) for k in range(len(arms))]
    whole = sum(weights)
    return tuple(weight / whole for weight in weights)


def sampled(arms: Sequence[Arm], draws: int, seed: int = 0) -> tuple[float, ...]:
    """Monte Carlo: the share of ``draws`` joint draws of the posteriors in which each arm's rate is highest."""
    generator = random.Random(seed)
    wins = [0] * len(arms)
    for _ in range(draws):
        rates = [generator.betavariate(arm.alpha, arm.beta) for arm in arms]
        wins[max(range(len(arms)), key=rates.__getitem__)] += 1
    return tuple(count / draws for count in wins)


def split_probabilities(split: RandomSplit, arms: Sequence[Arm]) -> tuple[float, ...]:
    """Each path's probability of being the best, by path number; a path of weight 0 has 0."""
    if len(arms) != len(split.paths):
        raise ValueError(f"split {split.id} has {len(split.paths)} paths, not {len(arms)}")
    competing = [number for number, path in enumerate(split.paths) if path.weight > 0]
    probabilities = dict(zip(competing, probability_best([arms[n] for n in competing]), strict=True))
    return tuple(probabilities.get(number, 0.0) for number in range(len(split.paths)))


def winner(split: RandomSplit, arms: Sequence[Arm], rule: WinnerRule | None = None) -> int | None:
    """The winning path under the split's rule (or ``rule``), or None while there is none: every path of a
    positive weight has at least ``min_recipients`` recipients, and one path is the best with probability at
    least ``probability``. A split with fewer than two such paths never has a winner (nothing is compared)."""
    rule = rule or split.winner
    if rule is None:
        return None
    competing = [number for number, path in enumerate(split.paths) if path.weight > 0]
    if len(competing) < 2 or any(arms[number].trials < rule.min_recipients for number in competing):
        return None
    probabilities = split_probabilities(split, arms)
    best = max(competing, key=probabilities.__getitem__)
    return best if probabilities[best] >= rule.probability else None


__all__ = ["EXACT_TERMS_LIMIT", "GRID", "Arm", "probability_best", "sampled", "split_probabilities", "winner"]
