"""Issue 10: `make demo` runs the renter's command in a container through the provider daemon, and
where it cannot get a Docker daemon it says so in one line and goes on without the workload
(never running it unconfined on the host)."""

from __future__ import annotations

from pathlib import Path

from oracle.demo.container import for_demo, summary_rows
from oracle.provider.devdocker import DockerChoice, choose_docker


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, title: str, command: str | None = None) -> None:
        self.lines.append(title)

    def note(self, text: str) -> None:
        self.lines.append(text)


def test_docker_is_the_running_daemon_else_a_private_dockerd_as_root_else_one_reason():
    running = choose_docker(answers=lambda url: True, euid=1000, which=lambda name: None)
    assert running.url and not running.start_private and running.unavailable is None
    private = choose_docker(answers=lambda url: False, euid=0, which=lambda name: "/usr/sbin/dockerd")
    assert private == DockerChoice(start_private=True)
    not_root = choose_docker(answers=lambda url: False, euid=1000, which=lambda name: "/usr/sbin/dockerd")
    assert "needs root" in not_root.unavailable and "\n" not in not_root.unavailable
    absent = choose_docker(answers=lambda url: False, euid=0, which=lambda name: None)
    assert "not installed" in absent.unavailable and "\n" not in absent.unavailable


def test_without_docker_the_demo_says_so_in_one_line_and_runs_no_workload(tmp_path: Path, monkeypatch):
    import oracle.provider.devdocker as devdocker

    monkeypatch.setattr(devdocker, "choose_docker", lambda: DockerChoice(unavailable="no Docker daemon answers"))
    ui = Notes()
    box, why = for_demo(ui, tmp_path, rpc="http://127.0.0.1:9", deployment={}, password_file=tmp_path / "p",
                        agent_keystore=tmp_path / "a", env={}, use_nvml=False)
    assert box is None and why == "no Docker daemon answers"
    said = [line for line in ui.lines if line.startswith("no container:")]
    assert len(said) == 1 and "never run unconfined" in said[0]
    assert not (tmp_path / "provider-daemon").exists()  # no daemon was started
    assert summary_rows({"skipped": why}) == [("renter's container", "not run: no Docker daemon answers", "demo")]


def test_docker_choice_on_this_host_names_a_daemon_or_a_reason():
    choice = choose_docker()
    assert (choice.url is not None) or choice.start_private or bool(choice.unavailable)
