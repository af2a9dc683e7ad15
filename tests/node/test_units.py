"""The node agent's pure parts, no root: the wire format, the dispatcher's lanes and
queue bound, the configuration from flags and environment."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multus_cni import shim as wire
from multus_node.config import ConfigError, load
from multus_node.dispatching import Dispatcher, Job
from multus_node.installing import uninstall

# ---- wire ----


@given(
    env=st.dictionaries(
        st.text(
            st.characters(blacklist_characters="=\0", blacklist_categories=("Cs",)), min_size=1
        ),
        st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))),
        max_size=20,
    ),
    stdin=st.binary(max_size=4096),
)
@settings(max_examples=200, deadline=None)
def test_request_round_trip(env: dict[str, str], stdin: bytes) -> None:
    frame = wire.encode_request(env, stdin)
    head, _, body = frame.partition(b"\n")
    version, env_len, stdin_len = wire.parse_request_header(head + b"\n")
    assert version == wire.PROTOCOL and env_len + stdin_len == len(body)
    assert wire.parse_env(body[:env_len]) == env
    assert body[env_len:] == stdin


@pytest.mark.parametrize(
    "line",
    [
        b"MPYSHIM 1 2\n",
        b"HTTP/1.1 200 OK\n",
        b"MPYSHIM one 1 1\n",
        b"MPYSHIM 1 -1 2\n",
        b"MPYSHIM 1 2000000 1\n",
        b"MPYSHIM 1 1 1048578\n",
        b"POST /cni HTTP/1.1\n",  # upstream multus-shim: not our protocol
    ],
)
def test_bad_request_headers(line: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.parse_request_header(line)


def test_reply_headers() -> None:
    assert wire.parse_reply_header(wire.encode_ack()) == ("ACK", 0, 0, 0)
    frame = wire.encode_result(1, b"out", b"err!")
    head, _, body = frame.partition(b"\n")
    assert wire.parse_reply_header(head) == ("RESULT", 1, 3, 4) and body == b"outerr!"
    # later versions may append fields to RESULT; every shim still reads it
    assert wire.parse_reply_header(b"MPYSHIM 7 RESULT 0 5 0 trace=abc") == ("RESULT", 0, 5, 0)
    for bad in (b"MPYSHIM 1 RESULT 256 0 0", b"MPYSHIM 0 ACK", b"MPYSHIM 1 ACK x", b""):
        with pytest.raises(wire.ProtocolError):
            wire.parse_reply_header(bad)


def test_env_block_drops_entries_without_equals() -> None:
    assert wire.parse_env(b"A=1\0junk\0=x\0B=a=b\0") == {"A": "1", "B": "a=b"}


# ---- dispatcher ----


class Recorder:
    def __init__(self, hold: threading.Event | None = None) -> None:
        self.hold = hold
        self.log: list[tuple[str, str, str, float]] = []
        self.lock = threading.Lock()

    def __call__(self, job: Job[str]) -> None:
        with self.lock:
            self.log.append(("start", job.lane, job.payload, time.monotonic()))
        if self.hold is not None:
            self.hold.wait(10)
        time.sleep(0.05)
        with self.lock:
            self.log.append(("end", job.lane, job.payload, time.monotonic()))


def test_one_lane_serializes_others_run_in_parallel() -> None:
    record = Recorder()
    dispatcher: Dispatcher[str] = Dispatcher(4, 100, record)
    dispatcher.start()
    for i in range(3):
        assert dispatcher.submit(Job("c1", "ADD", f"c1-{i}"))
        assert dispatcher.submit(Job(f"other{i}", "ADD", f"o{i}"))
    assert dispatcher.drain(10)
    c1 = [(kind, payload) for kind, lane, payload, _ in record.log if lane == "c1"]
    assert c1 == [(k, f"c1-{i}") for i in range(3) for k in ("start", "end")]
    starts = [t for kind, _, _, t in record.log if kind == "start"]
    assert max(starts[:4]) - min(starts[:4]) < 0.05, "different containers run at once"


def test_full_queue_sheds_add_and_check_never_del() -> None:
    hold = threading.Event()
    record = Recorder(hold)
    dispatcher: Dispatcher[str] = Dispatcher(1, 2, record)
    dispatcher.start()
    assert dispatcher.submit(Job("a", "ADD", "running"))
    time.sleep(0.1)  # the one worker holds it
    assert dispatcher.submit(Job("b", "ADD", "queued-1"))
    assert dispatcher.submit(Job("c", "ADD", "queued-2"))
    assert not dispatcher.submit(Job("d", "ADD", "shed"))
    assert not dispatcher.submit(Job("e", "CHECK", "shed"))
    for i in range(5):
        assert dispatcher.submit(Job(f"del{i}", "DEL", f"del-{i}"))
    assert dispatcher.submit(Job("", "GC", "gc"))
    assert dispatcher.submit(Job("~s", "STATUS", "status"))
    hold.set()
    assert dispatcher.drain(10)
    order = [payload for kind, _, payload, _ in record.log if kind == "start"]
    assert "shed" not in order
    # the DELs were served before the ADDs that waited longer
    assert order[0] == "running" and order[1:6] == [f"del-{i}" for i in range(5)]
    assert set(order[6:]) == {"queued-1", "queued-2", "gc", "status"}


def test_lane_with_a_del_next_goes_first() -> None:
    hold = threading.Event()
    record = Recorder(hold)
    dispatcher: Dispatcher[str] = Dispatcher(1, 10, record)
    dispatcher.start()
    dispatcher.submit(Job("x", "ADD", "x-add"))
    time.sleep(0.1)
    dispatcher.submit(Job("y", "ADD", "y-add"))
    dispatcher.submit(Job("x", "DEL", "x-del"))  # behind x's running ADD, in x's lane
    dispatcher.submit(Job("z", "DEL", "z-del"))
    hold.set()
    assert dispatcher.drain(10)
    order = [payload for kind, _, payload, _ in record.log if kind == "start"]
    assert order[0] == "x-add" and set(order[1:3]) == {"x-del", "z-del"}
    assert order[3] == "y-add"


# ---- configuration ----


def test_flags_win_over_environment_and_defaults_apply() -> None:
    env = {"MULTUS_NODE_NAME": "from-env", "MULTUS_MAX_QUEUE": "7", "MULTUS_CONF_SOURCE": "auto"}
    command, config = load(["--node-name", "from-flag"], env)
    assert command == "run"
    assert config.node_name == "from-flag" and config.max_queue == 7
    assert config.conf_source == "auto" and config.cni_bin_dir == "/opt/cni/bin"
    assert config.socket_path == "/run/multus/multus.sock"
    assert config.thin_kubeconfig == "/etc/cni/net.d/multus.d/multus.kubeconfig"
    assert config.delegate_dirs == ("/opt/cni/bin",)
    # SR-IOV: discovery every minute, `sriov` left to binDir, no driver rebinding
    assert config.sriov_discovery_interval == 60.0 and config.sriov_type == "host"
    assert config.sriov_dpdk_bind == "deny" and config.sysfs_root == "/"
    assert config.sriov_environment()["MULTUS_SRIOV_INVENTORY"] == (
        "/etc/cni/net.d/multus.d/sriov-inventory.json"
    )
    _, config = load(["uninstall", "--cni-path", "/a:/b"], {"MULTUS_NODE_NAME": "n"})
    assert config.delegate_dirs == ("/a", "/b")


def test_uninstall_removes_the_token_next_to_a_moved_kubeconfig(tmp_path: Path) -> None:
    """--kubeconfig-out moves the thin plugin's kubeconfig, and the token goes with it:
    uninstall removes both where they are."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _, config = load(
        ["uninstall", "--cni-conf-dir", str(tmp_path / "net.d"), "--cni-bin-dir",
         str(tmp_path / "bin"), "--kubeconfig-out", str(elsewhere / "multus.kubeconfig")],
        {"MULTUS_NODE_NAME": "n"},
    )  # fmt: skip
    assert config.thin_token == str(elsewhere / "token")
    (elsewhere / "multus.kubeconfig").write_text("{}")
    (elsewhere / "token").write_text("t")
    assert sorted(uninstall(config)) == [
        str(elsewhere / "multus.kubeconfig"),
        str(elsewhere / "token"),
    ]
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        ([], {}, "--node-name (MULTUS_NODE_NAME) is required"),
        (["--cni-bin-dir", "opt/cni"], {}, "--cni-bin-dir: 'opt/cni' must be an absolute path"),
        ([], {"MULTUS_WORKERS": "0"}, "MULTUS_WORKERS: 0 is not in [1, 100000]"),
        ([], {"MULTUS_METRICS_PORT": "http"}, "MULTUS_METRICS_PORT: 'http' is not a whole"),
        (["--conf-source", "file"], {}, "--conf-source: 'file' is not one of configmap, auto"),
        (["--sweep-interval", "-1"], {}, "--sweep-interval: -1 is not in [0, 86400]"),
        (["--cni-path", "/ok:rel"], {}, "--cni-path: 'rel' must be an absolute path"),
        (["--sriov-type", "intel"], {}, "--sriov-type: 'intel' is not one of host, multus-sriov"),
        (
            ["--sriov-type", "multus-sriov", "--own-plugins", ""],
            {},
            "--sriov-type multus-sriov needs multus-sriov among --own-plugins",
        ),
        ([], {"MULTUS_SRIOV_DPDK_BIND": "yes"}, "MULTUS_SRIOV_DPDK_BIND: 'yes' is not one of"),
        (["--sriov-discovery-interval", "-5"], {}, "--sriov-discovery-interval: -5 is not in"),
    ],
)
def test_bad_configuration_names_the_flag_or_variable(
    argv: list[str], env: dict[str, str], needle: str
) -> None:
    environ: dict[str, Any] = {"MULTUS_NODE_NAME": "n", **env} if argv or env else {}
    if needle.startswith("--node-name"):
        environ = {}
    with pytest.raises(ConfigError) as caught:
        load(argv, environ)
    assert needle in str(caught.value)


# ---- SR-IOV discovery ----


def test_sriov_reporter_debounces_bursts_and_publishes_only_changes(tmp_path: Path) -> None:
    """A burst of triggers is one pass after the debounce; an unchanged node is never
    published again; a new PF is, once."""
    from multus_node.discovering import SriovReporter
    from multus_sriov import simnic
    from multus_sriov.settings import Settings

    def add_pf(index: int) -> None:
        pf = {"name": f"ens{index}", "pci": f"0000:{0x10 + index:02x}:00.0", "mtu": 1500}
        pf["mac"] = f"02:00:00:00:00:{index:02x}"
        simnic.write_pf(str(tmp_path), pf, [{"driver": "vfio-pci"}] * 2, vf_bus=0x20 + index)

    add_pf(0)
    settings = Settings(
        {"MULTUS_SYSFS_ROOT": str(tmp_path), "MULTUS_SRIOV_CACHE_DIR": str(tmp_path / "c")}
    )
    published: list[list[dict[str, Any]]] = []
    reporter = SriovReporter(
        settings, published.append, interval=3600, debounce=0.3, link_events=False
    )
    reporter.start()
    try:
        deadline = time.monotonic() + 10
        while reporter.passes < 1:
            assert time.monotonic() < deadline, "no first pass"
            time.sleep(0.02)
        assert [pf["name"] for pf in published[0]] == ["ens0"]
        for _ in range(50):
            reporter.poke("link")
        time.sleep(1.0)
        assert reporter.passes == 2 and len(published) == 1  # one pass, nothing new
        add_pf(1)
        reporter.poke("link")
        while len(published) < 2:
            assert time.monotonic() < deadline, "the new PF was not published"
            time.sleep(0.02)
        assert [pf["name"] for pf in published[1]] == ["ens0", "ens1"]
        assert reporter.passes == 3
    finally:
        reporter.stop()


def test_the_shims_default_cni_dir_is_the_plugins() -> None:
    """multus_cni.shim keeps its own copy (the shim's imports stay minimal): the same."""
    from multus_cni.netconf import DEFAULT_CNI_DIR

    assert wire.DEFAULT_CNI_DIR == DEFAULT_CNI_DIR


@pytest.mark.skipif(os.geteuid() != 0, reason="creates a veth pair")
def test_sriov_reporter_passes_once_per_burst_of_link_events(tmp_path: Path) -> None:
    """A link created and removed in the agent's netns (a VF appearing, a pod's interface
    moving) is one more pass, after the debounce; the events themselves are not parsed."""
    from multus_node.discovering import SriovReporter
    from multus_sriov.settings import Settings

    (tmp_path / "sys" / "bus" / "pci" / "devices").mkdir(parents=True)  # a node without PFs
    settings = Settings(
        {"MULTUS_SYSFS_ROOT": str(tmp_path), "MULTUS_SRIOV_CACHE_DIR": str(tmp_path / "c")}
    )
    reporter = SriovReporter(settings, lambda pfs: None, interval=3600, debounce=0.3)
    reporter.start()
    name = f"mndl{uuid.uuid4().hex[:8]}"
    try:
        deadline = time.monotonic() + 10
        while reporter.passes < 1:
            assert time.monotonic() < deadline, "no first pass"
            time.sleep(0.02)
        time.sleep(0.7)  # the listener is bound
        before = reporter.passes
        for _ in range(3):
            subprocess.run(["ip", "link", "add", name, "type", "veth"], check=True)
            subprocess.run(["ip", "link", "del", name], check=True)
        while reporter.passes == before:
            assert time.monotonic() < deadline, "no pass after link events"
            time.sleep(0.02)
        time.sleep(0.6)
        assert reporter.passes == before + 1  # the burst was one pass
    finally:
        reporter.stop()
        subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
