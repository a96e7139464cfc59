"""One root exception for the package; each subclass also derives from the builtin it resembles."""


class GpurentError(Exception):
    """Root of every error gpurent raises on purpose."""


class ConfigError(GpurentError, ValueError):
    """A configuration value is missing, malformed or unsafe."""


class TelemetryError(GpurentError, ValueError):
    """Telemetry that cannot be parsed or is physically impossible."""


class BatchVerificationError(GpurentError, ValueError):
    """A telemetry batch whose signature, sequence, hash chain or freshness does not hold."""


class MeteringError(GpurentError, ValueError):
    """Samples that cannot be metered (for example, no samples at all)."""


class SigningError(GpurentError, RuntimeError):
    """A report could not be signed, or signing it would contradict an earlier signature."""


class StorageError(GpurentError, RuntimeError):
    """The node's durable state could not be read or written."""


class ChainError(GpurentError, RuntimeError):
    """An RPC call or transaction failed."""


class KeystoreError(GpurentError, ValueError):
    """A keystore that is missing, unreadable or protected by an unsafe password."""
