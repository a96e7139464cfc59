"""The CUDA prover: int8 tensor cores (``torch._int_mm``, int32 accumulation: exact), the table
held in GPU memory. Optional: needs the extra ``gpurent[gpu]`` (PyTorch with CUDA).

Same numbers as the numpy reference (oracle/proof/work.py) by construction: the seeded inputs
are generated on the CPU with numpy and uploaded, every product is exact, and q / xor / roll are
integer operations. tools/gpu_check.sh checks bit-identical commitments against numpy before it
measures anything.

While the GPU computes segment c, a host thread hashes checkpoint c (the lookups of a segment
are drawn from the root two checkpoints back, oracle/proof/seeds.py). Openings replay the asked
rows from X0 through every segment on the GPU with the table still resident (no checkpoint
states are kept: at production size they would be C x 16 MiB).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA index i == NVML index i (before CUDA starts)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from oracle.errors import ConfigError  # noqa: E402
from oracle.proof.answer import Commitments  # noqa: E402
from oracle.proof.params import WorkShape  # noqa: E402
from oracle.proof.seeds import initial_root, plan_root_checkpoint, segment_lookups  # noqa: E402
from oracle.proof.solver import Solution  # noqa: E402
from oracle.proof.work import Inputs  # noqa: E402

MIN_INT_MM_ROWS = 17   # torch._int_mm wants more than 16 rows


def cuda_available() -> bool:
    return torch.cuda.is_available()


def _q(product: torch.Tensor) -> torch.Tensor:
    return ((product >> 8) & 0xFF).to(torch.uint8).view(torch.int8)


def _mm(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Exact int8 x int8 -> int32 product; pads the rows up to what _int_mm accepts."""
    rows = left.shape[0]
    if rows < MIN_INT_MM_ROWS:
        left = torch.cat([left, left.new_zeros((MIN_INT_MM_ROWS - rows, left.shape[1]))])
    return torch._int_mm(left, right)[:rows]


class TorchSolver:
    name = "cuda"

    def __init__(self, device_index: int = 0) -> None:
        if not cuda_available():
            raise ConfigError("no CUDA device: the cuda solver needs PyTorch with CUDA (pip install 'gpurent[gpu]')")
        self.device = torch.device(f"cuda:{device_index}")
        self._self_checked = False

    def self_check(self) -> None:
        """Once per solver: a small challenge must give the numpy reference's root bit for bit.
        torch._int_mm has returned wrong int8 results on some CUDA builds (pytorch#107671);
        an answer from such a stack would be a wrong answer, so none is given."""
        from oracle.proof.params import DEV_SHAPE
        from oracle.proof.solver import NumpySolver

        seed = b"gpurent proof-of-GPU self check".ljust(32, b"\0")
        reference = NumpySolver().solve(seed, DEV_SHAPE, "GPU-self-check", "0").top_root
        measured = self._solve(seed, DEV_SHAPE, "GPU-self-check", "0").top_root
        if measured != reference:
            raise ConfigError(f"{self.device}: int8 products differ from the exact reference (torch "
                              f"{torch.__version__}, CUDA {torch.version.cuda}); not answering challenges")
        self._self_checked = True

    def check_uuid(self, gpu_uuid: str) -> None:
        """Refuse to answer for ``gpu_uuid`` on a device with another UUID (never a pass computed
        on a GPU other than the one named)."""
        uuid = getattr(torch.cuda.get_device_properties(self.device), "uuid", None)
        if uuid is not None and gpu_uuid.startswith("GPU-") and f"GPU-{uuid}" != gpu_uuid:
            raise ConfigError(f"CUDA device {self.device} is GPU-{uuid}, not {gpu_uuid}")

    def solve(self, seed: bytes, shape: WorkShape, gpu_uuid: str, gpu_serial: str) -> Solution:
        if not self._self_checked:
            self.self_check()
        self.check_uuid(gpu_uuid)
        return self._solve(seed, shape, gpu_uuid, gpu_serial)

    def _solve(self, seed: bytes, shape: WorkShape, gpu_uuid: str, gpu_serial: str) -> Solution:
        torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        dev = self.device
        inputs = Inputs(seed, shape)
        b = torch.from_numpy(inputs.b).to(dev)
        x0 = torch.from_numpy(inputs.x0).to(dev)
        h = torch.from_numpy(inputs.h).to(dev)
        table = torch.empty((shape.table_entries, shape.rows, shape.n), dtype=torch.int8, device=dev)
        for entry in range(shape.table_entries):
            perm = torch.from_numpy(inputs.perm(entry)).to(dev, non_blocking=True)
            table[entry] = _q(_mm(x0.index_select(1, perm), b))
        commitments = Commitments(shape)
        roots = [initial_root(seed)]
        plans: list[list[list[tuple[int, int]]]] = []
        state = x0.clone()
        pending = None  # (checkpoint, future of its root) being hashed on the host
        with ThreadPoolExecutor(max_workers=1) as hasher:
            for segment in range(shape.segments):
                plan_checkpoint = plan_root_checkpoint(segment)
                assert plan_checkpoint < len(roots), "a segment's plan root is hashed before it starts"
                plan = segment_lookups(seed, segment, roots[plan_checkpoint], shape.steps_per_segment,
                                       shape.lookups, shape.table_entries, shape.rows)
                plans.append(plan)
                for pairs in plan:
                    out = _q(_mm(state, b))
                    for entry, offset in pairs:
                        out ^= torch.roll(table[entry], -offset, 0)
                    state = out
                sketch = _mm(state, h).cpu().numpy()       # waits for this segment only
                if pending is not None:
                    roots.append(pending[1].result())
                pending = (segment + 1, hasher.submit(commitments.add_checkpoint, sketch))
            roots.append(pending[1].result())
        torch.cuda.synchronize(dev)
        solve_ms = int((time.perf_counter() - started) * 1000)

        def rows_at(wanted: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
            return self._replay(b, x0, table, plans, wanted)

        return Solution(seed, shape, commitments, rows_at, inputs, gpu_uuid, gpu_serial, solve_ms)

    def _replay(self, b: torch.Tensor, x0: torch.Tensor, table: torch.Tensor,
                plans: list[list[list[tuple[int, int]]]], wanted: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Rows of checkpoints, all asked rows replayed together from X0 in one pass."""
        rows = table.shape[1]
        row_ids = sorted({row for _, row in wanted})
        position = {row: i for i, row in enumerate(row_ids)}
        index = torch.tensor(row_ids, dtype=torch.long, device=self.device)
        z = x0.index_select(0, index)
        found: dict[tuple[int, int], bytes] = {}
        last = max(checkpoint for checkpoint, _ in wanted)
        for segment, plan in enumerate(plans[:last]):
            for pairs in plan:
                out = _q(_mm(z, b))
                for entry, offset in pairs:
                    out ^= table[entry].index_select(0, (index + offset) % rows)
                z = out
            checkpoint = segment + 1
            needed = [(checkpoint, row) for c, row in wanted if c == checkpoint]
            if needed:
                host = z.cpu().numpy()
                for key in needed:
                    found[key] = host[position[key[1]]].tobytes()
        return found
