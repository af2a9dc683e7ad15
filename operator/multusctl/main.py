"""multusctl: the operator's and the plugin's logic, offline, on files.

Each subcommand is an `add_<name>(subparsers)` function that declares its parser
and sets `func`; `SUBCOMMANDS` lists them. Adding one is one function + one entry.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from multus_api.inventory import SriovInventory
from multus_api.nodeconf import MULTUS_CONF_TYPES
from multus_api.problems import Problem, from_validation_error
from multus_api.settings import MultusSettings
from multus_cni.netconf import DEFAULT_CNI_DIR
from multus_operator import rendering, validation
from multusctl import demo, explaining, files, records

OUR_GROUPS = ("kubernetes.com/", "k8s.cni.cncf.io/", "multus.cni.cncf.io/")


def _err(text: str) -> None:
    print(text, file=sys.stderr)


# --- validate ---------------------------------------------------------------------------


def add_validate(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="check network objects and multus confs as the operator does",
        description="Exit 1 if any object is invalid; messages name the field.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            docs = files.load(path)
        except files.FileError as exc:
            _err(str(exc))
            status = 2
            continue
        for doc in docs:
            if _skippable(doc.body):
                if not args.quiet:
                    print(f"{path}: {doc.label}: skipped (not a network object)")
                continue
            report = validation.validate_object(doc.body)
            for problem in report.problems:
                level = "error" if problem.is_error else "warning"
                print(f"{path}: {doc.label}: {level}: {problem}")
            if not report.valid:
                status = max(status, 1)
            elif not args.quiet:
                print(f"{path}: {doc.label}: valid")
    return status


def _skippable(body: Any) -> bool:
    """Objects of kinds we do not define (GitOps repos mix kinds); ours are never skipped."""
    if not isinstance(body, dict):
        return False
    api = str(body.get("apiVersion") or "")
    if api.startswith(OUR_GROUPS) or body.get("type") in MULTUS_CONF_TYPES:
        return False
    meta = body.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return not (body.get("kind") == "ConfigMap" and name == validation.SETTINGS_CONFIGMAP)


# --- render -----------------------------------------------------------------------------


def add_render(sub: Any) -> None:
    p = sub.add_parser(
        "render",
        help="print the per-node ConfigMap the operator would write",
        description="Invalid network files are reported on stderr and left out.",
    )
    p.add_argument("--settings", required=True, help="settings.yaml or the multus-settings CM")
    p.add_argument("--node", required=True, help="node name")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="node label")
    p.add_argument("--inventory", help="SR-IOV inventory JSON/YAML, or a NodeState object")
    p.add_argument("--namespace", default="kube-system")
    p.add_argument("networks", nargs="*", metavar="NETWORK-FILE")
    p.set_defaults(func=cmd_render)


def cmd_render(args: argparse.Namespace) -> int:
    try:
        settings_docs = files.load(args.settings)
        inventory_docs = files.load(args.inventory) if args.inventory else []
        network_docs = files.load_all(args.networks)
    except files.FileError as exc:
        _err(str(exc))
        return 2
    settings, problems = _settings(settings_docs[0].body if settings_docs else {}, "settings")
    for problem in problems:
        _err(f"{args.settings}: {problem}")
    if settings is None:
        return 1
    labels = dict(item.split("=", 1) for item in args.label if "=" in item)
    inventory = None
    if inventory_docs:
        raw = inventory_docs[0].body
        if isinstance(raw, dict) and raw.get("kind") == "NodeState":
            raw = raw.get("status") or {}
        if not isinstance(raw, dict):
            _err(f"{args.inventory}: not an SR-IOV inventory (a mapping with pfs)")
            return 1
        try:
            inventory = rendering.inventory_of(raw)
        except ValidationError as exc:
            for problem in from_validation_error(exc, ""):
                _err(f"{args.inventory}: {problem}")
            return 1
    networks = []
    for doc in network_docs:
        report = validation.validate_object(doc.body)
        if not report.valid:
            _err(f"{doc.path}: {doc.label}: left out: {report.summary()}")
            continue
        for warning in report.warnings:
            _err(f"{doc.path}: {doc.label}: warning: {warning}")
        networks.append(network_view(doc.body))
    node = rendering.NodeView(args.node, labels, inventory)
    data = rendering.render(settings, node, networks)
    size = rendering.data_bytes(data)
    if size > rendering.MAX_DATA_BYTES:
        _err(
            f"rendered data is {size} bytes, over the API's ConfigMap limit of"
            f" {rendering.MAX_DATA_BYTES}: the operator keeps the node's last good one"
        )
        return 1
    body = rendering.configmap_body(args.node, args.namespace, data)
    print(files.dump_yaml(body), end="")
    return 0


def _settings(body: Any, base: str) -> tuple[MultusSettings | None, list[Problem]]:
    """From the `multus-settings` ConfigMap, as the operator reads it, or bare settings."""
    if isinstance(body, dict) and body.get("kind") == "ConfigMap":
        return validation.settings_from_configmap(body.get("data"), base)
    return validation.parse_settings(yaml.safe_dump(body) if body else "", base)


def network_view(body: dict[str, Any]) -> rendering.NetworkView:
    meta = body.get("metadata") or {}
    key = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
    return rendering.NetworkView(key, tuple(validation.delegate_confs(body)))


# --- explain ----------------------------------------------------------------------------


def add_explain(sub: Any) -> None:
    p = sub.add_parser(
        "explain",
        help="which interfaces a pod would get from its network annotations, and why",
        description="Runs the plugin's own planning code on the files given: the interfaces "
        "it creates, in attach order, or the error it refuses the pod with (exit 1).",
    )
    p.add_argument("pod", metavar="POD.yaml")
    p.add_argument("networks", nargs="*", metavar="NETWORK-FILE")
    p.add_argument("--settings", help="settings.yaml or the multus-settings ConfigMap")
    p.add_argument(
        "--conf-dir",
        metavar="DIR",
        help="the node's CNI conf dir (clusterNetwork/defaultNetworks files); default: none",
    )
    p.set_defaults(func=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        pods = files.load(args.pod)
        network_docs = files.load_all(args.networks)
        settings_docs = files.load(args.settings) if args.settings else []
    except files.FileError as exc:
        _err(str(exc))
        return 2
    settings = None
    if settings_docs:
        settings, problems = _settings(settings_docs[0].body, "")
        if settings is None:
            for problem in problems:
                _err(f"{args.settings}: {problem}")
            return 1
    pod = next((d.body for d in pods if isinstance(d.body, dict)), None)
    if pod is None:
        _err(f"{args.pod}: no pod found")
        return 2
    plan = explaining.explain(pod, [d.body for d in network_docs], settings, args.conf_dir)
    for line in plan.lines():
        print(line)
    return 0 if plan.ok else 1


# --- inventory --------------------------------------------------------------------------


def add_inventory(sub: Any) -> None:
    p = sub.add_parser(
        "inventory",
        help="print this node's SR-IOV inventory (the document multus-node reports)",
        description=(
            "PFs and VFs from $MULTUS_SYSFS_ROOT/sys/bus/pci/devices (default /), VF settings "
            "through the PF (or the simulated NIC of $MULTUS_SRIOV_SIM_STATE), VFs our pods "
            "hold as they were before (the records in $MULTUS_SRIOV_CACHE_DIR), PFs a device "
            "plugin manages by PCI facts only (the node's $MULTUS_SRIOV_INVENTORY): the same "
            "document multus-node reports, checked against the NodeState schema."
        ),
    )
    p.add_argument("--sysfs-root", help="root of the sysfs tree (default $MULTUS_SYSFS_ROOT or /)")
    p.add_argument("--node", help="print it as the NodeState object of this node")
    p.set_defaults(func=cmd_inventory)


def cmd_inventory(args: argparse.Namespace) -> int:
    import json

    from multus_sriov.discovery import DiscoveryError, report
    from multus_sriov.settings import Settings

    settings = Settings()
    if args.sysfs_root:
        settings.sysfs_root = args.sysfs_root
    try:
        doc = report(settings)
    except DiscoveryError as exc:
        _err(f"inventory: {exc}")
        return 1
    try:
        SriovInventory.model_validate(doc)
    except ValidationError as exc:  # a sysfs we misread: say so rather than print it
        for problem in from_validation_error(exc, ""):
            _err(f"inventory: {problem}")
        return 1
    if args.node:
        doc = {
            "apiVersion": "multus.cni.cncf.io/v1",
            "kind": "NodeState",
            "metadata": {"name": args.node},
            "status": doc,
        }
    print(json.dumps(doc, indent=2))
    return 0


# --- demo -------------------------------------------------------------------------------


def add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the seed's multi-homed pod for real in network namespaces (root)",
        description=demo.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=lambda args: demo.run_demo())


# --- records / forget ---------------------------------------------------------------------


def add_records(sub: Any) -> None:
    p = sub.add_parser(
        "records",
        help="list attachment records kept by failing DELs (or all, with --all)",
        description=records.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cni-dir", default=DEFAULT_CNI_DIR, help="the conf's cniDir")
    p.add_argument("--all", action="store_true", help="every record, live ones too")
    p.set_defaults(func=cmd_records)


def cmd_records(args: argparse.Namespace) -> int:
    found, problems = records.rows(args.cni_dir)
    shown = [r for r in found if args.all or r.stuck]
    for problem in problems:
        _err(problem)
    if not shown:
        print("no records" if args.all else "no records kept by a failing DEL")
        return 1 if problems else 0
    print(f"{'CONTAINER':<24} {'IFNAME':<8} {'NETWORK':<16} {'STATE':<8} AGE  DEL-FAILURES")
    for row in shown:
        print(
            f"{row.container_id[:24]:<24} {row.ifname:<8} {row.network[:16]:<16} "
            f"{row.state:<8} {records.age(row.age_seconds):<4} {row.del_failures}"
        )
        for held in row.holds:
            print(f"    holds: {held}")
        if row.last_error:
            print(f"    last DEL error: {row.last_error}")
    return 1 if problems else 0


def add_forget(sub: Any) -> None:
    p = sub.add_parser(
        "forget",
        help="drop an attachment record that DEL keeps failing on (after a confirmation)",
        description="Multus will no longer try to undo what the record lists: free it by "
        "hand first (or be sure it holds nothing). The record is moved to quarantine/.",
    )
    p.add_argument("attachment", metavar="CONTAINER:IFNAME")
    p.add_argument("--cni-dir", default=DEFAULT_CNI_DIR, help="the conf's cniDir")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_forget)


def cmd_forget(args: argparse.Namespace) -> int:
    cid, _, ifname = str(args.attachment).partition(":")
    if not cid or not ifname:
        _err(f"{args.attachment!r}: give CONTAINER:IFNAME (see `multusctl records`)")
        return 2
    found = {(r.container_id, r.ifname): r for r in records.rows(args.cni_dir)[0]}
    row = found.get((cid, ifname))
    if row is None:
        _err(f"no record {cid}:{ifname} in {args.cni_dir}")
        return 1
    print(f"{cid}:{ifname} (network {row.network}, state {row.state})")
    for held in row.holds or ["nothing left to undo"]:
        print(f"    holds: {held}")
    if not args.yes:
        answer = input("Forget it? Multus will not free what it holds. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("kept")
            return 1
    try:
        moved = records.forget(args.cni_dir, cid, ifname)
    except KeyError:
        _err(f"{cid}:{ifname} is gone already (a DEL finished it)")
        return 1
    print(f"forgotten; the record is kept at {moved}")
    return 0


SUBCOMMANDS: list[Callable[[Any], None]] = [
    add_validate,
    add_render,
    add_explain,
    add_records,
    add_forget,
    add_inventory,
    add_demo,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="multusctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
