"""Ways to combine member probabilities (members, rows, classes) into one (rows, classes)."""
from __future__ import annotations

import numpy as np

METHODS = ("hard_vote", "soft_vote", "weighted", "stacking")


def _weights(n_members: int, weights) -> np.ndarray:
    w = np.ones(n_members) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n_members,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"{n_members} non-negative weights with a positive sum expected, but got {w.tolist()}")
    return w / w.sum()


def soft_vote(member_probs: np.ndarray, weights=None) -> np.ndarray:
    """(Weighted) mean of member probabilities."""
    if len(member_probs) == 1 and weights is None:  # a student: a copy, not a weighted sum of one
        return member_probs[0].copy()
    return np.einsum("m,mnc->nc", _weights(len(member_probs), weights), member_probs)


def hard_vote(member_probs: np.ndarray, weights=None) -> np.ndarray:
    """Vote shares: each member votes for its argmax class with its weight.

    Tie rule (deterministic): among classes with the same vote share, the one with the higher
    mean member probability wins; if that ties too, the lower class index. The tie-break is
    applied as a nudge far below one vote, so the returned shares still sum to 1.
    """
    w = _weights(len(member_probs), weights)
    n_classes = member_probs.shape[2]
    votes = np.eye(n_classes)[member_probs.argmax(2)]  # (m, n, c) one-hot
    shares = np.einsum("m,mnc->nc", w, votes)
    tie_break = member_probs.mean(0) - np.arange(n_classes) * 1e-9
    nudge = 1e-6 * (tie_break - tie_break.mean(1, keepdims=True))
    winners = (shares + nudge).argmax(1)
    # shares are the answer; make argmax of the returned array equal the tie-broken winner
    out = shares.copy()
    out[np.arange(len(out)), winners] += 1e-9
    return out / out.sum(1, keepdims=True)


def stacking(member_probs: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """A fitted multinomial logistic regression over the concatenated member probabilities."""
    features = member_probs.transpose(1, 0, 2).reshape(member_probs.shape[1], -1)
    coef, intercept = np.asarray(coef), np.asarray(intercept)
    if coef.shape[1] != features.shape[1]:
        raise ValueError(f"stacker over {features.shape[1]} inputs expected, but got coef of shape {coef.shape}")
    logits = features @ coef.T + intercept
    if logits.shape[1] == 1:  # binary logistic regression keeps one column
        logits = np.concatenate([-logits, logits], 1) / 2
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(1, keepdims=True)


def combine(method: str, member_probs: np.ndarray, weights=None, stacker: dict | None = None) -> np.ndarray:
    if method == "soft_vote":
        return soft_vote(member_probs)
    if method == "weighted":
        return soft_vote(member_probs, weights)
    if method == "hard_vote":
        return hard_vote(member_probs, weights)
    if method == "stacking":
        if stacker is None:
            raise ValueError("method 'stacking' needs a fitted stacker, but got stacker=None")
        return stacking(member_probs, stacker["coef"], stacker["intercept"])
    raise ValueError(f"method one of {list(METHODS)} expected, but got {method!r}")
