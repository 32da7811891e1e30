"""The process-group backend follows what torch sees in the workers, not what Ray reserved.

Ray Train picks NCCL whenever the workers reserve a GPU. A node that Ray says has a GPU but where
torch sees no CUDA (a GPU-typed node without drivers, a simulated GPU node, `resources.cuda_missing:
cpu`) then fails in process-group set-up, before the training function could say why. Here every
worker is asked first: NCCL only when all of them see CUDA, gloo otherwise; the training function
then fails naming the node, or trains on the CPU, as the spec says (trainers.search.training_device).
"""
from __future__ import annotations

import dataclasses

from ray.train.torch import TorchConfig
from ray.train.torch.config import _TorchBackend


def _sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def backend_for(cuda_per_worker: list[bool]) -> str:
    return "nccl" if cuda_per_worker and all(cuda_per_worker) else "gloo"


class _CudaAwareBackend(_TorchBackend):
    def on_start(self, worker_group, backend_config: "CudaAwareTorchConfig"):
        if backend_config.from_workers:
            backend_config = dataclasses.replace(backend_config,
                                                 backend=backend_for(worker_group.execute(_sees_cuda)))
        super().on_start(worker_group, backend_config)


@dataclasses.dataclass
class CudaAwareTorchConfig(TorchConfig):
    """TorchConfig whose backend is chosen from the workers' CUDA (see the module doc). A flag of its
    own, since Train V2's TorchTrainer fills `backend` from use_gpu before any worker exists."""

    from_workers: bool = True

    @property
    def backend_cls(self):
        return _CudaAwareBackend
