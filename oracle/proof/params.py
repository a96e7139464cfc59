"""Challenge sizes, protocol parameters and per-model deadlines: pure data and arithmetic.

A challenge's shape (:class:`WorkShape`) is fixed by the rental's GPU model: the table of
stored entries fills ``WORKING_SET_FRACTION`` of the model's memory (oracle/gpu_models.py), so
a card with less memory must recompute or fetch what it cannot hold (docs/protocol.md, "Proof
of GPU"). Deadlines come from :data:`PERFORMANCE`: measured rows where a real GPU was at hand
(tools/gpu_check.sh), otherwise estimates from the vendor's published dense int8 tensor
throughput and memory bandwidth, marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from oracle.errors import ConfigError
from oracle.gpu_models import GPU_MODELS, gpu_model

MIB = 1 << 20

# -- protocol parameters (docs/protocol.md, "Proof of GPU: parameters") ----------------------------
WORKING_SET_FRACTION_BPS = 8_500      # start challenge: table bytes / model memory (room left for B, state, CUDA)
PERIODIC_WORKING_SET_FRACTION_BPS = 1_000  # later challenges: the share of memory a rental reserves for them
MIX_FACTOR = 16                       # mix steps per table entry: each entry is read MIX_FACTOR * LOOKUPS times
MEAN_INTERVAL_S = 3_600               # mean time between challenges after the start challenge
DEADLINE_MARGIN_BPS = 15_000          # commit deadline = margin x expected solve time + network allowance
NETWORK_ALLOWANCE_MS = 4_000          # node and agent polls (1 s each), the posts, block propagation, clock skew
OPEN_WINDOW_MS = 60_000               # time to answer the openings once their seed is known
TELEMETRY_GRACE_MS = 120_000          # how long a verdict waits for telemetry covering the window
MIN_WINDOW_UTIL_PCT = 50              # a GPU that computed shows this mean utilization in the window ...
MIN_WINDOW_POWER_BPS = 3_000          # ... and this mean power, as a share of the model's power limit
END_CHALLENGE_INDEX = 0xFFFF_FFFF     # the end challenge's index (start-sized, issued after the rental ended)
END_CHALLENGE_DELAY_S = 60            # the end challenge's block is the first this long after the end: every
                                      # node has seen RentalEnded (2 confirmations of 12 s blocks) by then


@dataclass(frozen=True, slots=True)
class WorkShape:
    """Sizes of one challenge. Every matrix is int8; products accumulate exactly in int32.

    n: inner dimension (the seeded matrix B is n x n, every row has n entries).
    rows: rows of the state and of each table entry (h).
    table_entries: w entries V_a (rows x n each) held in GPU memory.
    lookups: table entries XORed into the state per step (l).
    steps_per_segment: steps between two committed checkpoints (s).
    segments: committed checkpoints (C); mix steps = C * s.
    sketch_width: int32 columns of a row's sketch (d): row . H, H seeded n x d.
    group_rows: rows per Merkle leaf (g).
    opened: (segment, row) cells the verifier opens (k).
    """

    n: int
    rows: int
    table_entries: int
    lookups: int
    steps_per_segment: int
    segments: int
    sketch_width: int
    group_rows: int
    opened: int

    def __post_init__(self) -> None:
        if self.n % 8 or self.sketch_width % 8 or self.n < 8:
            raise ConfigError("n and sketch_width must be positive multiples of 8 (int8 tensor-core tiles)")
        if self.n * 128 * 128 >= 2**31:
            raise ConfigError("n too large: an int8 dot product of length n must fit int32 exactly")
        if self.rows % self.group_rows or self.rows < 32:
            raise ConfigError("rows must be a multiple of group_rows and at least 32")
        for name in ("table_entries", "lookups", "steps_per_segment", "segments", "opened"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")

    @property
    def mix_steps(self) -> int:
        return self.segments * self.steps_per_segment

    @property
    def entry_bytes(self) -> int:
        return self.rows * self.n

    @property
    def table_bytes(self) -> int:
        return self.table_entries * self.entry_bytes

    @property
    def leaves_per_checkpoint(self) -> int:
        return self.rows // self.group_rows

    @property
    def step_ops(self) -> int:
        """Integer operations (multiply + add) of one rows x n x n product."""
        return 2 * self.rows * self.n * self.n

    @property
    def prover_ops(self) -> int:
        return (self.table_entries + self.mix_steps) * self.step_ops

    @property
    def verifier_macs(self) -> int:
        """Multiply-adds one verification costs: k cells x s steps x (1 + l) row products."""
        return self.opened * self.steps_per_segment * (1 + self.lookups) * self.n * self.n

    @property
    def committed_bytes(self) -> int:
        """Sketch bytes the prover hashes: C checkpoints x rows x d x 4."""
        return self.segments * self.rows * self.sketch_width * 4


# Production shape constants (per model only the table size changes).
PRODUCTION_N = 2048
PRODUCTION_ROWS = 8192
PRODUCTION_LOOKUPS = 4
PRODUCTION_STEPS_PER_SEGMENT = 6
PRODUCTION_SKETCH_WIDTH = 8
PRODUCTION_GROUP_ROWS = 256
PRODUCTION_OPENED = 12


def production_shape(memory_mib: int, fraction_bps: int = WORKING_SET_FRACTION_BPS) -> WorkShape:
    """The shape for a GPU with ``memory_mib``: the table fills ``fraction_bps`` of it; the mix
    phase has MIX_FACTOR steps per entry of the full-memory table whatever the fraction, so a
    periodic challenge (small table) takes about as long as the start one."""
    entry_bytes = PRODUCTION_ROWS * PRODUCTION_N
    entries = memory_mib * MIB * fraction_bps // 10_000 // entry_bytes
    full_entries = memory_mib * MIB * WORKING_SET_FRACTION_BPS // 10_000 // entry_bytes
    if entries < 1:
        raise ConfigError(f"{memory_mib} MiB holds no table entry of {entry_bytes} bytes")
    mix = full_entries * MIX_FACTOR
    segments = -(-mix // PRODUCTION_STEPS_PER_SEGMENT)
    return WorkShape(PRODUCTION_N, PRODUCTION_ROWS, entries, PRODUCTION_LOOKUPS, PRODUCTION_STEPS_PER_SEGMENT,
                     segments, PRODUCTION_SKETCH_WIDTH, PRODUCTION_GROUP_ROWS, PRODUCTION_OPENED)


# Dev mode and tests: the same algorithm at a size numpy solves in milliseconds.
DEV_SHAPE = WorkShape(n=64, rows=64, table_entries=8, lookups=2, steps_per_segment=2, segments=8,
                      sketch_width=8, group_rows=16, opened=8)
DEV_PROFILE_NAME = "dev"
DEV_COMMIT_DEADLINE_MS = 20_000


@dataclass(frozen=True, slots=True)
class Performance:
    """How fast a model runs the challenge kernels. ``source`` says whether it was measured."""

    model: str
    int8_dense_tops: float          # published dense (no sparsity) int8 tensor throughput
    memory_gb_per_s: float          # published memory bandwidth
    measured_solve_ms: tuple[int, int] | None  # (start, periodic) from tools/gpu_check.sh; None: not yet measured
    source: str


# Efficiency assumed for an estimate (replaced by the measurement once there is one).
ASSUMED_MATMUL_EFFICIENCY_BPS = 5_000   # torch._int_mm at 8192 x 2048 x 2048: half of the dense peak
ASSUMED_MEMORY_EFFICIENCY_BPS = 7_000

PERFORMANCE: tuple[Performance, ...] = (
    Performance("NVIDIA H100 80GB HBM3", 1979.0, 3350.0, None,
                "not yet measured (no GPU where this was built; run tools/gpu_check.sh); estimate from "
                "published: NVIDIA H100 SXM datasheet, int8 3,958 TOPS with sparsity, 3.35 TB/s"),
    Performance("NVIDIA H200", 1979.0, 4800.0, None,
                "not yet measured (run tools/gpu_check.sh); estimate from published: NVIDIA H200 SXM "
                "datasheet, int8 3,958 TOPS with sparsity, 4.8 TB/s"),
    Performance("NVIDIA A100-SXM4-80GB", 624.0, 2039.0, None,
                "published: NVIDIA A100 datasheet, int8 1,248 TOPS with sparsity, 2,039 GB/s"),
    Performance("NVIDIA L40S", 733.0, 864.0, None,
                "published: NVIDIA L40S datasheet, int8 1,466 TOPS with sparsity, 864 GB/s"),
    Performance("NVIDIA GeForce RTX 4090", 660.6, 1008.0, None,
                "published: NVIDIA Ada architecture whitepaper, int8 1,321.2 TOPS with sparsity, 1,008 GB/s"),
    Performance("NVIDIA L4", 242.5, 300.0, None,
                "published: NVIDIA L4 datasheet, int8 485 TOPS with sparsity, 300 GB/s"),
)
_PERF = {row.model: row for row in PERFORMANCE}


def estimated_solve_ms(shape: WorkShape, perf: Performance) -> int:
    """Timing model: every product at the assumed share of the dense int8 peak, and per mix step
    the state read and written plus ``lookups`` table entries read at the assumed share of the
    memory bandwidth. Host-side hashing of the sketches runs beside the GPU and is not counted."""
    ops_per_s = perf.int8_dense_tops * 1e12 * ASSUMED_MATMUL_EFFICIENCY_BPS / 10_000
    bytes_per_s = perf.memory_gb_per_s * 1e9 * ASSUMED_MEMORY_EFFICIENCY_BPS / 10_000
    compute_s = shape.prover_ops / ops_per_s
    memory_s = shape.mix_steps * (2 + shape.lookups) * shape.entry_bytes / bytes_per_s
    return int((compute_s + memory_s) * 1000) + 1


@dataclass(frozen=True, slots=True)
class ChallengeSize:
    shape: WorkShape
    expected_solve_ms: int
    commit_deadline_ms: int   # from the challenge's issue time to the commitment's arrival


@dataclass(frozen=True, slots=True)
class ChallengeProfile:
    """What the nodes ask of one GPU model: the start challenge (table in 85 % of the memory,
    before the renter's job holds any) and the periodic ones (table in the 10 % of memory the
    rental reserves for challenges, same compute), each with its deadline."""

    name: str                 # the GPU model name (NVML), or "dev"
    start: ChallengeSize
    periodic: ChallengeSize
    basis: str                # "measured: ...", "estimate: ... (not yet measured)", "dev: ..."
    open_window_ms: int = OPEN_WINDOW_MS
    telemetry_grace_ms: int = TELEMETRY_GRACE_MS
    end_delay_s: int = END_CHALLENGE_DELAY_S

    def size(self, index: int) -> ChallengeSize:
        """Challenge ``index`` of a rental: 0 (the start challenge) and :data:`END_CHALLENGE_INDEX`
        (the end challenge, once the renter's job is gone) fill the memory; the rest are periodic."""
        return self.start if index in (0, END_CHALLENGE_INDEX) else self.periodic

    @property
    def shape(self) -> WorkShape:
        return self.start.shape

    @property
    def expected_solve_ms(self) -> int:
        return self.start.expected_solve_ms

    @property
    def commit_deadline_ms(self) -> int:
        return self.start.commit_deadline_ms

    @property
    def due_after_issue_ms(self) -> int:
        """Every node has judged a periodic challenge this long after its issue (metering counts
        a challenge once this has passed: the same set on every node)."""
        return self.periodic.commit_deadline_ms + self.open_window_ms + self.telemetry_grace_ms


def deadline_ms(expected_solve_ms: int) -> int:
    return expected_solve_ms * DEADLINE_MARGIN_BPS // 10_000 + NETWORK_ALLOWANCE_MS


def _size(shape: WorkShape, expected_ms: int) -> ChallengeSize:
    return ChallengeSize(shape, expected_ms, deadline_ms(expected_ms))


def profile_for(model_name: str) -> ChallengeProfile:
    """The profile of a model in oracle/gpu_models.py (or the dev profile for ``"dev"``)."""
    if model_name == DEV_PROFILE_NAME:
        # 20 s: a dev agent may still be starting (interpreter, keystore, the demo's replay alignment)
        dev = ChallengeSize(DEV_SHAPE, 50, DEV_COMMIT_DEADLINE_MS)
        return ChallengeProfile(DEV_PROFILE_NAME, dev, dev, "dev: numpy-sized, not a proof of any GPU",
                                open_window_ms=10_000, telemetry_grace_ms=5_000, end_delay_s=2)
    model = gpu_model(model_name)
    perf = _PERF.get(model.name)
    if perf is None:
        raise ConfigError(f"no challenge performance row for {model.name!r} in oracle/proof/params.py")
    start = production_shape(model.memory_mib)
    periodic = production_shape(model.memory_mib, PERIODIC_WORKING_SET_FRACTION_BPS)
    if perf.measured_solve_ms is not None:
        start_ms, periodic_ms = perf.measured_solve_ms
        basis = "measured: " + perf.source
    else:
        start_ms, periodic_ms = estimated_solve_ms(start, perf), estimated_solve_ms(periodic, perf)
        basis = "estimate: " + perf.source
    return ChallengeProfile(model.name, _size(start, start_ms), _size(periodic, periodic_ms), basis)


def all_profiles() -> list[ChallengeProfile]:
    return [profile_for(model.name) for model in GPU_MODELS]


def uncaught_periodic_swaps() -> list[tuple[str, str]]:
    """(listed model, card) pairs where a card with less memory than the listed model is not
    slower on the listed model's periodic challenge: its table fits and the estimated solve is
    within the deadline. The start and end challenges are the memory proofs (docs/protocol.md,
    "Memory after the start"); these are the swaps between them that periodic challenges do not
    catch, and that the end challenge then does."""
    out = []
    for listed in PERFORMANCE:
        profile = profile_for(listed.model)
        memory_mib = gpu_model(listed.model).memory_mib
        for card in PERFORMANCE:
            card_mib = gpu_model(card.model).memory_mib
            if card_mib >= memory_mib or profile.periodic.shape.table_bytes > card_mib * MIB:
                continue
            if estimated_solve_ms(profile.periodic.shape, card) <= profile.periodic.commit_deadline_ms:
                out.append((listed.model, card.model))
    return out
