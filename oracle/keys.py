"""Encrypted key files (Web3 Secret Storage, version 3) for agent and node keys.

- ``new_keystore(path, password)`` makes a fresh key (or encrypts a given one), writes it with
  mode 0600 without ever overwriting an existing file, and returns its checksummed address.
- ``load_keystore(path, password)`` returns the 32-byte private key.

Outside ``dev=True`` both refuse an unsafe password (empty, shorter than
``MIN_PASSWORD_CHARS``, or a well-known default such as "password" or "changeme"), and
``load_keystore`` refuses a file that group or others can read, the way ssh refuses a private
key with loose permissions, and a file whose KDF is too cheap to slow down a password guess
(scrypt with ``n`` below ``MIN_SCRYPT_N``, pbkdf2 with fewer than ``MIN_PBKDF2_ITERATIONS``, or
any other KDF). The KDF is eth-account's default (scrypt, n=262144) unless ``kdf``/``iterations``
say otherwise (tests use the cheapest accepted setting, ``CHEAPEST_ACCEPTED_KDF``, or dev mode).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Literal

from eth_account import Account

from oracle.errors import KeystoreError

MIN_PASSWORD_CHARS = 8
MIN_SCRYPT_N = 1 << 14  # scrypt with r=8: 16 MiB of memory per guess
MIN_PBKDF2_ITERATIONS = 100_000
CHEAPEST_ACCEPTED_KDF = {"kdf": "pbkdf2", "iterations": MIN_PBKDF2_ITERATIONS}
DEFAULT_PASSWORDS = frozenset(
    {
        "",
        "password",
        "password1",
        "changeme",
        "change-me",
        "changeit",
        "default",
        "secret",
        "admin",
        "root",
        "test",
        "testtest",
        "dev",
        "gpurent",
        "letmein",
        "qwerty",
        "12345678",
        "123456789",
        "1234567890",
        "00000000",
    }
)


def check_password(password: str, *, dev: bool = False) -> None:
    """Raise ``KeystoreError`` for an unsafe keystore password unless ``dev``."""
    if not isinstance(password, str):
        raise KeystoreError("the keystore password must be a string")
    if dev:
        return
    if password.strip().lower() in DEFAULT_PASSWORDS:
        raise KeystoreError(
            "refusing an empty or default keystore password outside dev mode; choose a real one"
        )
    if len(password) < MIN_PASSWORD_CHARS:
        raise KeystoreError(
            f"refusing a keystore password shorter than {MIN_PASSWORD_CHARS} characters "
            "outside dev mode"
        )


def check_kdf(keystore: dict, path: str | os.PathLike[str] = "keystore") -> None:
    """Raise ``KeystoreError`` unless the keystore's KDF makes each password guess expensive."""
    crypto = next((v for k, v in keystore.items() if k.lower() == "crypto"), None)
    kdf = str(crypto.get("kdf", "")).lower() if isinstance(crypto, dict) else ""
    params = crypto.get("kdfparams", {}) if isinstance(crypto, dict) else {}
    params = params if isinstance(params, dict) else {}
    fix = ("re-encrypt the key with eth-account's default scrypt (eth_account.Account.encrypt(key, "
           "password)), or make a new key with `gpurent oracle keys new`")
    if kdf == "scrypt":
        n, r = params.get("n"), params.get("r", 8)
        if not isinstance(n, int) or not isinstance(r, int) or n * r < MIN_SCRYPT_N * 8:
            raise KeystoreError(f"refusing {path} outside dev mode: its scrypt KDF (n={n}, r={r}) is too cheap "
                                f"(at least n={MIN_SCRYPT_N} with r=8); {fix}")
    elif kdf == "pbkdf2":
        c = params.get("c")
        if not isinstance(c, int) or c < MIN_PBKDF2_ITERATIONS:
            raise KeystoreError(f"refusing {path} outside dev mode: its pbkdf2 KDF has {c} iterations (at least "
                                f"{MIN_PBKDF2_ITERATIONS}); {fix}")
    else:
        raise KeystoreError(f"refusing {path}: unknown keystore KDF {kdf!r} (scrypt or pbkdf2)")


def new_keystore(
    path: str | os.PathLike[str],
    password: str,
    *,
    private_key: bytes | None = None,
    dev: bool = False,
    kdf: Literal["scrypt", "pbkdf2"] | None = None,
    iterations: int | None = None,
) -> str:
    """Encrypt ``private_key`` (a fresh random key if None) into ``path``; return its address.

    The file is created with mode 0600 and never replaces an existing file.
    """
    check_password(password, dev=dev)
    key = secrets.token_bytes(32) if private_key is None else private_key
    if len(key) != 32:
        raise KeystoreError("a private key is 32 bytes")
    try:
        encrypted = Account.encrypt(key, password, kdf=kdf, iterations=iterations)
    except ValueError as exc:  # e.g. key out of the curve's range
        raise KeystoreError(f"cannot encrypt this key: {exc}") from exc
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeystoreError(f"{path} already exists; refusing to overwrite a keystore") from None
    except OSError as exc:
        raise KeystoreError(f"cannot create {path}: {exc}") from exc
    with os.fdopen(fd, "w") as handle:
        json.dump(encrypted, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o600)  # in case the umask or the filesystem widened it
    return Account.from_key(key).address


def load_keystore(path: str | os.PathLike[str], password: str, *, dev: bool = False) -> bytes:
    """Decrypt the keystore at ``path``; return the 32-byte private key.

    A wrong password is answered as wrong, whatever its length; the password policy is checked
    only once the password has opened the keystore (a weak one that works is still refused).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc}") from exc
    if not dev and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeystoreError(
            f"{path} is accessible by group or others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    try:
        data = json.loads(text)
    except ValueError:
        raise KeystoreError(
            f"{path} is not a JSON keystore (a plaintext key file is not accepted)"
        ) from None
    if not isinstance(data, dict) or "crypto" not in {k.lower() for k in data}:
        raise KeystoreError(f"{path} is not a Web3 Secret Storage keystore")
    if not dev:
        check_kdf(data, path)
    try:
        key = bytes(Account.decrypt(data, password))
    except ValueError as exc:
        raise KeystoreError(f"cannot decrypt {path}: wrong password or corrupt file") from exc
    except Exception as exc:  # eth-keyfile raises assorted errors on malformed files
        raise KeystoreError(f"cannot decrypt {path}: {exc}") from exc
    check_password(password, dev=dev)
    return key
