"""Comparing verdicts: the operator's (`multus_operator.validation`), `multusctl explain`'s
and what the real `multus` executable does with the same network.

`Bench` execs `multus` ADD (then DEL) as a runtime would, in conf-file mode and in
Kubernetes mode (the kmock emulator serving the objects and the pod), with the fake
delegate (tests/fakes/fake_delegate.py) installed under every plugin name a conf uses,
however odd the name (`bridge\\n` is a file name like any other): so a refusal can only
come from the plugin's rules, never from a missing binary. The fake logs every call;
the interface names the plugin planned are read from the ADD calls' CNI_IFNAME.

`judge` states the property. For one network (object or settings) and one pod:

- the operator says Invalid  =>  the executable refuses before running any delegate,
  naming (one of) the field(s) the operator names;
- the executable refuses before running a delegate, naming a field of the network  =>
  the operator says Invalid there;
- the executable refuses for a reason beyond the network alone (two networks asking
  for one interface name, an object not found, the node's conf files)  =>  explain
  prints that very error;
- the executable attaches  =>  the operator says Valid and explain prints the
  interface names the delegates got, in the same order.

Explain runs the plugin's code (that is its point); checking it against the executable
checks that it passes the plugin the same inputs. The operator's verdict is computed by
its own code path (schema, rulebook, models) and compared with the executable, never
with the rulebook.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import event
from hypothesis.control import currently_in_test_context

from multus_api.settings import MultusSettings
from multusctl import explaining
from tests.fakes.harness import install_fake
from tests.k8s.emulator import NAD, NETWORK, POD, Api
from tests.support.cni import CniCall, netns, run_multus

PREFIX = "mrb"
MASTER = "agree-master"  # the fake every pod's cluster network runs
NAMESPACE = "default"
# Refusals about two networks together, not about one network's conf.
MULTI_NETWORK = ("interface name ", "only one delegate may be the master")


@dataclass
class Outcome:
    """What one `multus` ADD did."""

    rc: int
    msg: str
    code: int | None
    ifnames: list[str]  # CNI_IFNAME of the delegates' ADD calls, one per attachment
    ran: bool  # any delegate call but VERSION

    @property
    def refused_before_running(self) -> bool:
        return self.rc != 0 and not self.ran


@dataclass
class Case:
    """One network in one mode: how to read the executable's message about it."""

    label: str
    context: str  # what the plugin's message starts with before the field
    rename: tuple[str, str] = ("", "")  # the plugin's field prefix -> the operator's
    multi: tuple[str, ...] = MULTI_NETWORK  # refusals about more than this network


def installable(name: Any) -> bool:
    """Whether `name` can be a file in the bin dir (the rules may still refuse it)."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\x00" not in name
        and len(name.encode()) <= 200  # room for the installer's temp name
    )


def plugin_types(doc: Any) -> list[Any]:
    """Every `type` and `ipam.type` a conf or conflist names."""
    if not isinstance(doc, dict):
        return []
    found = [doc.get("type")]
    ipam = doc.get("ipam")
    if isinstance(ipam, dict):
        found.append(ipam.get("type"))
    plugins = doc.get("plugins")
    if isinstance(plugins, list):
        for plugin in plugins:
            found += plugin_types(plugin)
    return found


class Bench:
    """A pod netns, a bin dir of fakes, a cniDir, an empty confDir and the emulator."""

    def __init__(self, root: Path, pod_netns: str, api: Api) -> None:
        self.root = root
        self.netns = pod_netns
        self.api = api
        self.bin_dir = root / "bin"
        self.cni_dir = root / "cni"
        self.conf_dir = root / "net.d"
        self.log = root / "calls.jsonl"
        for directory in (self.bin_dir, self.cni_dir, self.conf_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = api.kubeconfig(root)
        self.install(MASTER)

    # ---- fakes ----

    def install(self, name: Any) -> None:
        if not installable(name) or (self.bin_dir / name).exists():
            return
        install_fake(self.bin_dir, name)
        try:
            Path(f"{self.bin_dir / name}.debug.json").write_text(
                json.dumps({"label": name, "log": str(self.log)})
            )
        except OSError:
            pass  # no room for the suffix in a long name (the rules refuse it anyway)

    def install_all(self, *docs: Any) -> None:
        for doc in docs:
            for name in plugin_types(doc):
                self.install(name)

    def calls(self, container_id: str) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        found = []
        for line in self.log.read_text().splitlines():
            call = json.loads(line)
            if call["env"].get("CNI_CONTAINERID") == container_id:
                found.append(call)
        return found

    # ---- the node conf, as the operator renders it ----

    def settings(self, raw: dict[str, Any], k8s: bool = True) -> MultusSettings:
        """Settings for this bench (its dirs and kubeconfig), not validated: invalid
        settings render too, so the executable can say what it makes of them."""
        values: dict[str, Any] = {
            "mode": "thin",
            "cniVersion": "1.0.0",
            "name": "agree",
            **raw,
            "kubeconfig": str(self.kubeconfig) if k8s else None,
            "cniDir": str(self.cni_dir),
            "binDir": str(self.bin_dir),
        }
        return MultusSettings.model_construct(**values)

    def conf(self, settings: MultusSettings) -> dict[str, Any]:
        return explaining.node_conf(settings, str(self.conf_dir))

    # ---- running multus ----

    def add(self, conf: dict[str, Any], cni_args: str = "") -> Outcome:
        """ADD for a new container; DEL it again when it succeeded (it must)."""
        cid = f"{PREFIX}-{uuid.uuid4().hex[:12]}"

        def run(command: str) -> CniCall:
            return run_multus(
                command,
                conf,
                container_id=cid,
                netns=self.netns,
                cni_path=str(self.bin_dir),
                cni_args=cni_args,
                timeout=60,
            )

        call = run("ADD")
        doc = call.doc
        calls = [c for c in self.calls(cid) if c["command"] != "VERSION"]
        names: list[str] = []
        for c in calls:
            if c["command"] == "ADD" and (not names or names[-1] != c["env"]["CNI_IFNAME"]):
                names.append(c["env"]["CNI_IFNAME"])
        outcome = Outcome(
            call.rc,
            str(doc.get("msg", "")) if call.rc else "",
            doc.get("code") if call.rc else None,
            names,
            bool(calls),
        )
        if call.rc == 0:
            deleted = run("DEL")
            assert deleted.rc == 0, deleted.stdout
        records = list((self.cni_dir / "attachments").glob(f"{cid}*"))
        assert records == [], f"records left: {records}"
        return outcome

    @contextmanager
    def objects(self, *items: tuple[str, dict[str, Any]]) -> Iterator[None]:
        """Network objects served by the emulator while the block runs."""
        for resource, body in items:
            self.api.put_copy(resource, body)
        try:
            yield
        finally:
            for resource, body in items:
                meta = body["metadata"]
                self.api.delete(resource, meta.get("namespace", NAMESPACE), meta["name"])

    def pod_add(
        self, conf: dict[str, Any], annotations: dict[str, str], namespace: str = NAMESPACE
    ) -> tuple[dict[str, Any], Outcome]:
        """Kubernetes mode: a pod with these annotations, ADD for it, then it is gone."""
        name = f"agree-{uuid.uuid4().hex[:8]}"
        pod = self.api.put(
            POD,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        )
        uid = pod["metadata"]["uid"]
        args = (
            f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};K8S_POD_UID={uid}"
        )
        try:
            return pod, self.add(conf, args)
        finally:
            self.api.delete(POD, namespace, name)

    def assert_clean(self) -> None:
        markers = [p for p in self.bin_dir.rglob("*") if p.is_file() and ".markers" in str(p)]
        assert markers == [], f"delegate side effects left: {markers}"
        assert list((self.cni_dir / "attachments").glob("*")) == []


@contextmanager
def bench(root: Path) -> Iterator[Bench]:
    with netns(PREFIX) as pod_netns:
        api = Api()
        try:
            yield Bench(root, pod_netns, api)
        finally:
            api.close()
    shutil.rmtree(root, ignore_errors=True)


# ---- the property ----


def object_field(msg: str, case: Case) -> str | None:
    """The field of the network itself a refusal names, in the operator's spelling;
    None when the refusal is about more than the network (another object, the pod's
    interface names, the node's files)."""
    if not msg.startswith(case.context):
        return None
    rest = msg[len(case.context) :]
    path, sep, why = rest.partition(": ")
    if not sep or not path or " " in path or why.startswith(case.multi):
        return None
    theirs, ours = case.rename
    if theirs:
        if path != theirs and not path.startswith((theirs + ".", theirs + "[")):
            return None
        path = ours + path[len(theirs) :]
    return path


def names_field(path: str, named: str) -> bool:
    """Whether the operator's `path` is the field the plugin `named` (or within it)."""
    return any(
        a == b or a.startswith((b + ".", b + "[")) for a, b in ((path, named), (named, path))
    )


def judge(case: Case, valid: bool, errors: list[str], plan: explaining.Plan, x: Outcome) -> None:
    """The property (module docstring); `errors` are the operator's error paths."""
    outcome = "attached" if x.rc == 0 else "refused"
    if object_field(x.msg, case) is None and x.rc:
        outcome += " for a reason beyond the network"
    # `pytest --hypothesis-show-statistics` shows how the examples spread.
    mode = case.label[case.label.index("(") + 1 : -1] if "(" in case.label else ""
    if currently_in_test_context():  # the regression rows run outside hypothesis
        event(f"{case.label.split()[0]}, {mode}: {'Valid' if valid else 'Invalid'} -> {outcome}")
    where = f"{case.label}: operator {'Valid' if valid else 'Invalid ' + str(errors)}; "
    where += f"explain {plan.ifnames or plan.problems}; multus rc={x.rc} {x.msg!r} {x.ifnames}"
    if x.rc == 0:
        assert valid, "the executable attached what the operator calls Invalid: " + where
        assert plan.ok and plan.ifnames == x.ifnames, "explain differs: " + where
        return
    assert x.refused_before_running, "refused after running a delegate: " + where
    assert plan.problems == [x.msg], "explain does not say the executable's error: " + where
    named = object_field(x.msg, case)
    if named is None:
        assert valid, "Invalid, but refused for another reason: " + where
        return
    assert not valid, "the executable refuses what the operator calls Valid: " + where
    assert any(names_field(p, named) for p in errors), "a different field: " + where


__all__ = ["MASTER", "NAD", "NAMESPACE", "NETWORK", "Bench", "Case", "Outcome", "bench", "judge"]
