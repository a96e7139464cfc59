"""Binary keccak Merkle trees over byte leaves, with inclusion proofs. Pure.

Leaves and inner nodes are domain-separated (``0x00 || leaf``, ``0x01 || left || right``) so a
leaf can never be presented as an inner node. A level with an odd count is padded with the
all-zero hash (never a valid node hash) so every tree is a full binary tree.
"""

from __future__ import annotations

from typing import Sequence

try:  # safe-pysha3 when present (the telemetry hot path pins it), else eth_hash: the same bytes
    from sha3 import keccak_256 as _keccak_256

    def keccak(data: bytes) -> bytes:
        return _keccak_256(data).digest()

except ImportError:  # pragma: no cover
    from eth_hash.auto import keccak

ZERO = bytes(32)


def leaf_hash(leaf: bytes) -> bytes:
    return keccak(b"\x00" + leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    return keccak(b"\x01" + left + right)


def levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, the root last (a one-element list)."""
    if not leaf_hashes:
        raise ValueError("a Merkle tree needs at least one leaf")
    level = list(leaf_hashes)
    out = [level]
    while len(level) > 1:
        if len(level) % 2:
            level = level + [ZERO]
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        out.append(level)
    return out


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    return levels(leaf_hashes)[-1][0]


def proof(tree: list[list[bytes]], index: int) -> list[bytes]:
    """Sibling hashes from the leaf at ``index`` up to (not including) the root."""
    path = []
    for level in tree[:-1]:
        sibling = index ^ 1
        path.append(level[sibling] if sibling < len(level) else ZERO)
        index //= 2
    return path


def verify(root_hash: bytes, leaf_digest: bytes, index: int, path: Sequence[bytes], leaf_count: int) -> bool:
    """True iff ``path`` proves ``leaf_digest`` (already leaf-hashed) at ``index`` under ``root_hash``."""
    if not 0 <= index < leaf_count or len(path) != depth(leaf_count):
        return False
    digest = leaf_digest
    for sibling in path:
        digest = node_hash(sibling, digest) if index & 1 else node_hash(digest, sibling)
        index //= 2
    return digest == root_hash


def depth(leaf_count: int) -> int:
    d = 0
    while (1 << d) < leaf_count:
        d += 1
    return d
