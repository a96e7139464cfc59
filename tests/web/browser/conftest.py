"""Browser tests of `gpurent web`: Playwright (the PyPI package) driving Debian's Chromium
(/usr/bin/chromium, never Playwright's own browser download), against a real anvil, three real
attestation nodes (the demo's own start_nodes) and `gpurent web` as a subprocess. Transactions go
through an injected EIP-1193 test wallet (wallet.js) backed by anvil's unlocked dev accounts.

    .venv/bin/python -m pytest -p no:pytest-brownie tests/web/browser  (part of make test-web)

GPURENT_SCREENSHOTS=1 writes the screenshots into docs/screenshots/ (committed, shown in the
README); otherwise into the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
os.environ["PATH"] = os.pathsep.join([str(REPO_ROOT / "node_modules" / ".bin"), str(REPO_ROOT / ".venv" / "bin"),
                                      os.environ.get("PATH", "")])
CHROMIUM = os.environ.get("GPURENT_CHROMIUM", "/usr/bin/chromium")
VENDOR = REPO_ROOT / "oracle" / "web" / "static" / "vendor"
WALLET_JS = (Path(__file__).parent / "wallet.js").read_text()
PAGE_LOADS: list[tuple[str, float, float]] = []  # (page, ms until its content showed, server ms of its API calls)


def _requirements() -> str | None:
    if shutil.which("anvil") is None:
        return "anvil not installed (make setup)"
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} not found (as root: apt-get install chromium; make setup does it)"
    if not (VENDOR / "uPlot.esm.js").is_file() or not (VENDOR / "axe.min.js").is_file():
        return f"front-end packages missing in {VENDOR} (make setup copies them from node_modules)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (make setup installs requirements.lock)"
    return None


@dataclass
class Stack:
    rpc: str
    web: str
    state: Path
    deployment: dict[str, Any]
    keys: Any
    node_urls: list[str]
    procs: Any
    offers: dict[str, int] = field(default_factory=dict)
    governance: dict[str, Any] = field(default_factory=dict)
    demo_chain: Any = None  # oracle.demo.steps.DemoChain: the dev accounts' action contexts
    provider: str = ""
    renter: str = ""

    def rpc_call(self, method: str, params: list | None = None) -> Any:
        from oracle.localchain import _rpc

        return _rpc(self.rpc, method, params or [], timeout=10.0)


def _wait(what: str, predicate, timeout_s: float, log: Path | None = None, every_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline, then reported
            last = exc
        time.sleep(every_s)
    tail = log.read_text()[-3000:] if log and log.is_file() else ""
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last error: {last})\n{tail}")


def _list_offer(demo_chain: Any, model: str, count: int, price: str, kwh: str, region: str, agent: str) -> int:
    """`gpurent provider offer create` for the provider (the demo's dev account 1), through oracle.actions."""
    from oracle.actions import offers
    from oracle.chain.client import OfferTerms
    from oracle.demo.base import PROVIDER
    from oracle.metering import StaticGridIntensity

    terms = OfferTerms(gpu_model=model, gpu_count=count, payment_token=demo_chain.deployment.payment_token,
                       price_per_gpu_hour=demo_chain.units(price, "price per GPU-hour"),
                       price_per_kwh=demo_chain.units(kwh, "price per kWh"), region=region,
                       grid_intensity_g_per_kwh=int(StaticGridIntensity().g_per_kwh(region)),
                       max_duration_seconds=86_400, min_uptime_bps=9_500, agent=agent)
    return int(offers.create_offer(demo_chain.ctx(PROVIDER), terms).offer.offer_id)


def _schedule_change(demo_chain: Any) -> dict[str, Any]:
    """Schedules ``setGpuModel("NVIDIA B200", 1000 W, 183,000 MiB)`` on the timelock; its id and tx."""
    from oracle.chain.governance import TimelockGovernance
    from oracle.demo.base import DEPLOYER

    ctx = demo_chain.ctx(DEPLOYER)
    gov = TimelockGovernance(ctx.sender, demo_chain.deployment.timelock, demo_chain.deployment.market)
    op = gov.operation("setGpuModel", b"NVIDIA B200".ljust(32, b"\0"), 1000, 183_000)
    scheduled = gov.schedule(op)
    return {"id": op.id_hex, "tx": scheduled.tx_hash, "ready_at": gov.ready_at(op), "timelock": gov.timelock.address}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """anvil (clock = wall clock: the rental runs in real time), the market deployed with three
    node signers (threshold 2), a staked provider with three offers, three nodes and `gpurent web`."""
    missing = _requirements()
    if missing:
        pytest.skip(missing)
    import httpx

    from oracle.demo import steps
    from oracle.demo.base import GPU_MODEL, PROVIDER, RENTER, DemoOptions
    from oracle.demo.nodes import start_nodes
    from oracle.demo.procs import _cli_env, _free_port, _Processes, make_keys
    from oracle.demo.watch import _fund_node_keys
    from oracle.localchain import LocalChain, dev_address

    state = tmp_path_factory.mktemp("web")
    home = state / "home"
    home.mkdir()
    saved = {k: os.environ.get(k) for k in ("GPURENT_HOME", "GPURENT_DEPLOYMENTS", "GPURENT_RPC_URL",
                                           "GPURENT_KEYSTORE", "GPURENT_DEV_ACCOUNT")}
    os.environ["GPURENT_HOME"] = str(home)
    os.environ["GPURENT_DEPLOYMENTS"] = str(home / "deployments.json")
    for name in ("GPURENT_RPC_URL", "GPURENT_KEYSTORE", "GPURENT_DEV_ACCOUNT"):
        os.environ.pop(name, None)
    chain = LocalChain(state / "chain")
    procs = _Processes()
    web_proc = None
    try:
        rpc = chain.start(port=_free_port()).url
        deployments = home / "deployments.json"
        demo_chain = steps.DemoChain(rpc, deployments, lambda label, tx: None, journal_home=home)
        keys = make_keys(state, 3, fast_kdf=True)
        deployment = steps.deploy(demo_chain, keys.node_addresses, 2)
        steps.stake(demo_chain, "2000")
        offers = {}
        for name, model, count, price, kwh, region in (
                ("rented", GPU_MODEL, 1, "3.00", "0.20", "SE"),
                ("pricier", GPU_MODEL, 1, "4.50", "0.20", "DE"),
                ("other_model", "NVIDIA A100-SXM4-80GB", 2, "1.80", "0.10", "SE")):
            offers[name] = _list_offer(demo_chain, model, count, price, kwh, region, keys.agent_address)
        # a pending governance change for the operators page: the deployer (the timelock's proposer
        # on a local deployment) schedules registering a new GPU model
        governance = _schedule_change(demo_chain)
        _fund_node_keys(rpc, keys.node_addresses)
        options = DemoOptions(state_dir=state, nodes=3, threshold=2, settle_interval_s=1.5, challenges=False, speed=1.0)
        node_urls = start_nodes(deployment, keys, options, state, rpc, procs, confirmations=0).urls

        port = _free_port()
        web = f"http://127.0.0.1:{port}"
        web_log = state / "web.log"
        node_args = [a for url in node_urls for a in ("--node", url)]
        web_proc = subprocess.Popen(
            [sys.executable, "-m", "oracle.cli.main", "web", "--port", str(port), "--rpc", rpc,
             "--deployment", str(deployments), "--data-dir", str(state / "web-data"), "--confirmations", "0",
             *node_args],
            env=_cli_env(home), cwd=str(state), stdout=open(web_log, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        _wait("gpurent web's index to be ready", lambda: web_proc.poll() is None and
              httpx.get(f"{web}/api/v1/index/status", timeout=2).json().get("ready"), 60, web_log)
        yield Stack(rpc=rpc, web=web, state=state, deployment=deployment, keys=keys, node_urls=node_urls,
                    procs=procs, offers=offers, governance=governance, demo_chain=demo_chain, provider=dev_address(PROVIDER), renter=dev_address(RENTER))
    finally:
        if web_proc is not None:
            from oracle.demo.procs import _stop

            _stop(web_proc)
        procs.stop_all()
        chain.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def browser(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.failed_call = report.failed


@pytest.fixture
def open_as(browser: Any, stack: Stack, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """open_as(account) -> a Playwright page whose window.ethereum is the test wallet of ``account``.
    When the test fails, every page's screenshot and HTML are left in its tmp_path/failed/."""
    contexts = []

    def open_page(account: str, width: int = 1600) -> Any:
        context = browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
        context.add_init_script(WALLET_JS.replace("__RPC_URL__", stack.rpc).replace("__ACCOUNT__", account))
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # console errors of the page's own code (a 404 the page expects, e.g. no receipt yet, is not one)
        page.on("console", lambda msg: errors.append(msg.text)
                if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
        page.js_errors = errors  # type: ignore[attr-defined]
        return page

    yield open_page
    if getattr(request.node, "failed_call", False):
        out = tmp_path / "failed"
        out.mkdir(exist_ok=True)
        for i, context in enumerate(contexts):
            for j, page in enumerate(context.pages):
                try:
                    page.screenshot(path=str(out / f"page-{i}-{j}.png"), full_page=True)
                    (out / f"page-{i}-{j}.html").write_text(page.content())
                except Exception:  # noqa: BLE001 - best effort, the failure itself is reported
                    pass
        print(f"pages of the failed test: {out}; server log: {stack.state / 'web.log'}")
    for context in contexts:
        context.close()


@pytest.fixture
def shots(tmp_path: Path):
    """shot(page, name): a full-page PNG in docs/screenshots/ (GPURENT_SCREENSHOTS=1) or tmp."""
    folder = REPO_ROOT / "docs" / "screenshots" if os.environ.get("GPURENT_SCREENSHOTS") == "1" else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)

    def shot(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shot


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if PAGE_LOADS:
        terminalreporter.write_sep("-", "web page loads (headless Chromium, this machine)")
        for name, shown_ms, api_ms in PAGE_LOADS:
            terminalreporter.write_line(f"{name:<28} content shown {shown_ms:7.0f} ms   API calls (server) {api_ms:6.0f} ms")
