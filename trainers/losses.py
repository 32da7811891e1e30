"""Losses, small and pure."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a probability target (mixup/cutmix labels)."""
    return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float) -> torch.Tensor:
    """alpha*T^2*KL(softmax(teacher/T) || softmax(student/T)) + (1-alpha)*CE(student, labels).

    The teacher is given as probabilities (an ensemble averages probabilities, not logits);
    softening them by T is softmax(log(p)/T).
    """
    if temperature <= 0 or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"temperature > 0 and 0 <= alpha <= 1 must hold, but got "
                         f"(temperature={temperature}, alpha={alpha})")
    soft_teacher = F.softmax(torch.log(teacher_probs.clamp_min(1e-12)) / temperature, dim=-1)
    kl = F.kl_div(F.log_softmax(student_logits / temperature, dim=-1), soft_teacher, reduction="batchmean")
    return alpha * temperature**2 * kl + (1 - alpha) * F.cross_entropy(student_logits, labels)


def regression_loss(pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """MSE or Huber (delta 1) of predictions against a regression target, both in the target's units,
    measured in standard deviations of the target (scale): the loss reads the same whatever the units."""
    residual = (pred.reshape(-1) - target.reshape(-1).float()) / scale
    if kind == "huber":
        return F.huber_loss(residual, torch.zeros_like(residual), delta=1.0)
    return residual.pow(2).mean()
