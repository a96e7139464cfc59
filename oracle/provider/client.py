"""The renter's side of the provider daemon's endpoint: every request signed with the renter's
key, workloads sealed to the offer's agent key, connection details unsealed with the renter's.

How a renter finds the daemon: ``--provider-url`` (or ``$GPURENT_PROVIDER_URL``) on
``gpurent rent open``; the URL is then remembered per chain and rental in
``~/.gpurent/provider-urls.json`` so ``rent exec/logs/cp/ssh`` find it. The daemon proves it
speaks for the offer: the public key it announces must hash to the offer's ``agent`` on chain
(``seal_for_address``), else nothing is sent to it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import httpx

from oracle.provider import AuthError, ProviderError
from oracle.provider.auth import sign_request
from oracle.provider.workload import WorkloadSpec, seal_for_address, unseal

PROVIDER_URL_ENV = "GPURENT_PROVIDER_URL"


class ProviderClient:
    def __init__(self, url: str, private_key: bytes, chain_id: int, market: str, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.key = private_key
        self.chain_id = chain_id
        self.market = market
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def _signed(self, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        return sign_request(self.key, self.chain_id, self.market, method, path, body)

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code < 400:
            return response
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if response.status_code in (401, 403):
            raise AuthError(f"the provider daemon refused the request ({response.status_code}): {detail}")
        raise ProviderError(f"the provider daemon answered {response.status_code}: {detail}")

    def request(self, method: str, path: str, body: bytes = b"", **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, content=body, headers=self._signed(method, path, body), **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderError(f"cannot reach the provider daemon at {self.url}: {exc}") from None
        return self._check(response)

    # -- calls -------------------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        try:
            return self._check(self.http.get("/v1/identity")).json()
        except httpx.HTTPError as exc:
            raise ProviderError(f"cannot reach the provider daemon at {self.url}: {exc}") from None

    def upload_workload(self, rental_id: int, spec: WorkloadSpec, offer_agent: str) -> dict[str, Any]:
        """Seal ``spec`` to the daemon's agent key (checked against the offer's agent) and upload it."""
        ident = self.identity()
        sealed = seal_for_address(bytes.fromhex(ident["public_key"][2:]), offer_agent, spec.canonical_bytes())
        return self.request("PUT", f"/v1/rentals/{rental_id}/workload", sealed).json()

    def connection(self, rental_id: int) -> dict[str, Any]:
        sealed = self.request("GET", f"/v1/rentals/{rental_id}/connection").json()["sealed"]
        return json.loads(unseal(self.key, bytes.fromhex(sealed[2:])))

    def exec(self, rental_id: int, cmd: list[str], workdir: str | None = None) -> tuple[int, bytes, bytes]:
        body = json.dumps({"cmd": cmd, "workdir": workdir}).encode()
        out = self.request("POST", f"/v1/rentals/{rental_id}/exec", body).json()
        return int(out["exit_code"]), base64.b64decode(out["stdout"]), base64.b64decode(out["stderr"])

    def logs(self, rental_id: int, *, follow: bool = False, tail: int | None = None) -> Iterator[bytes]:
        path = f"/v1/rentals/{rental_id}/logs?follow={'true' if follow else 'false'}"
        if tail is not None:
            path += f"&tail={int(tail)}"
        headers = self._signed("GET", path, b"")
        try:
            with self.http.stream("GET", path, headers=headers, timeout=None if follow else 60.0) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            raise ProviderError(f"log stream from {self.url} failed: {exc}") from None

    def shell(self, rental_id: int, stdin: Any, stdout: Any) -> None:
        """Bridge ``stdin``/``stdout`` (binary files) to a TTY shell in the container until it exits."""
        import os
        import threading

        from websockets.exceptions import ConnectionClosed, InvalidStatus
        from websockets.sync.client import connect

        path = f"/v1/rentals/{rental_id}/shell"
        ws_url = "ws" + self.url[len("http"):] + path
        try:
            ws = connect(ws_url, additional_headers=self._signed("GET", path, b""), open_timeout=30,
                         max_size=None)
        except InvalidStatus as exc:
            raise ProviderError(f"the provider daemon refused the shell: HTTP {exc.response.status_code}") from None
        except (OSError, TimeoutError) as exc:
            raise ProviderError(f"cannot reach the provider daemon at {self.url}: {exc}") from None

        try:
            fd = stdin.fileno()
            read = lambda: os.read(fd, 4096)  # noqa: E731  (unbuffered: a raw terminal's keys go at once)
        except (AttributeError, OSError, ValueError):
            read = lambda: stdin.read1(4096) if hasattr(stdin, "read1") else stdin.read(4096)  # noqa: E731

        def pump_in() -> None:
            try:
                while True:
                    data = read()
                    if not data:
                        ws.send(b"\x04")  # end of input: Ctrl-D ends the shell
                        return
                    ws.send(data)
            except (ConnectionClosed, OSError):
                return

        threading.Thread(target=pump_in, name="shell-stdin", daemon=True).start()
        try:
            while True:
                data = ws.recv()
                stdout.write(data if isinstance(data, bytes) else data.encode())
                stdout.flush()
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code >= 4000:
                error = AuthError if exc.rcvd.code == 4403 else ProviderError
                raise error(f"the provider daemon refused the shell: {exc.rcvd.reason}") from None
        finally:
            ws.close()

    def put_archive(self, rental_id: int, path: str, tar_bytes: bytes) -> dict[str, Any]:
        return self.request("PUT", f"/v1/rentals/{rental_id}/archive?path={quote(path, safe='/')}", tar_bytes).json()

    def get_archive(self, rental_id: int, path: str) -> bytes:
        return self.request("GET", f"/v1/rentals/{rental_id}/archive?path={quote(path, safe='/')}").content


# -- where each rental's daemon is -------------------------------------------------------------------

def _urls_file() -> Path:
    from oracle.deployment import gpurent_home

    return gpurent_home() / "provider-urls.json"


def remember_provider_url(chain_id: int, rental_id: int, url: str) -> None:
    path = _urls_file()
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[f"{chain_id}:{rental_id}"] = url.rstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def provider_url_for(chain_id: int, rental_id: int, given: str | None) -> str:
    if given:
        return given.rstrip("/")
    path = _urls_file()
    data = json.loads(path.read_text()) if path.is_file() else {}
    url = data.get(f"{chain_id}:{rental_id}")
    if url is None:
        raise ProviderError(f"no provider daemon URL known for rental {rental_id}: pass --provider-url "
                            f"(or set {PROVIDER_URL_ENV})")
    return url
