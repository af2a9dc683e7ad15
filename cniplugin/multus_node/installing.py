"""Files multus-node puts on the host: the shim, the thin plugin, the node's conf.

Each is written to a temp file in the target directory, fsynced, chmod'ed and renamed
over the old one, and the directory fsynced: a reader (kubelet, the runtime, a shim
being exec'd) sees the old file or the new one, never a partial one, and a running
binary is never written to (no ETXTBSY). Nothing is written when the content is
already there.

The conf is never deleted when the agent stops or restarts (Multus did, and pods then
started without their secondary networks until it came back); only `uninstall` removes
what we installed, which leaves the node's default network conf in charge again.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import stat
import sys
import tempfile
import zipfile

import multus_cni
import multus_rules
from multus_api.nodeconf import MULTUS_CONF_TYPES, SHIM_TYPE, THIN_TYPE
from multus_cni.fsutil import fsync_dir, remove, write_atomic

from . import metrics
from .config import NodeConfig

logger = logging.getLogger("multus_node.installing")

SHIM_NAME = SHIM_TYPE  # our own name: the protocol is not upstream multus-shim's
THIN_NAME = THIN_TYPE
CONF_NAME = "00-multus.conf"
INVENTORY_NAME = "sriov-inventory.json"
# A conf of one of these types is a multus conf: never a node's default network.
MULTUS_TYPES = frozenset(MULTUS_CONF_TYPES)


def install_file(path: str, data: bytes, mode: int, what: str) -> bool:
    """Write `data` at `path` atomically unless it is already there; True if written."""
    try:
        st = os.stat(path)
        if stat.S_IMODE(st.st_mode) == mode and st.st_size == len(data):
            with open(path, "rb") as handle:
                if handle.read() == data:
                    return False
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, data, mode)
    metrics.INSTALLS.labels(what).inc()
    logger.info("installed %s (%d bytes)", path, len(data))
    return True


def install_shim(config: NodeConfig) -> bool:
    """The C shim from the image into the CNI bin dir; False when the image lacks it."""
    try:
        with open(config.shim_binary, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        logger.error("cannot read the shim %s: %s", config.shim_binary, exc.strerror)
        return False
    install_file(os.path.join(config.cni_bin_dir, SHIM_NAME), data, 0o755, "shim")
    return True


def thin_plugin(python: str) -> bytes:
    """The thin plugin as one self-contained file: a zip application of `multus_cni` and
    the rulebook it calls (standard library only) run by the host's `python`.
    Byte-identical for the same sources, so a restart finds it unchanged and writes
    nothing."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        names = []
        for package in (multus_cni, multus_rules):
            root = os.path.dirname(package.__file__ or "")
            for directory, subdirs, files in os.walk(root):
                subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
                for name in sorted(files):
                    if name.endswith((".py", ".typed")):
                        full = os.path.join(directory, name)
                        names.append((full, os.path.relpath(full, os.path.dirname(root))))
        for full, arcname in names:
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(full, "rb") as handle:
                archive.writestr(info, handle.read())
        main = zipfile.ZipInfo("__main__.py", date_time=(1980, 1, 1, 0, 0, 0))
        archive.writestr(main, "from multus_cni.main import main\nmain()\n")
    return f"#!{python} -I\n".encode() + buffer.getvalue()


def install_thin(config: NodeConfig) -> None:
    install_file(
        os.path.join(config.cni_bin_dir, THIN_NAME), thin_plugin(config.thin_python), 0o755, "thin"
    )


def own_plugins(config: NodeConfig) -> str:
    """A private directory holding our own plugins (`--own-plugins`, e.g. multus-sriov,
    which needs Python and pyroute2) from the agent's image: delegates found there run
    in the agent's container, never chrooted into the host (which may have no Python).
    A bare name is the console script next to the agent's interpreter."""
    directory = tempfile.mkdtemp(prefix="multus-node-plugins-")
    for entry in config.own_plugins:
        source = (
            entry if os.path.isabs(entry) else os.path.join(os.path.dirname(sys.executable), entry)
        )
        try:
            shutil.copy2(source, os.path.join(directory, os.path.basename(entry)))
        except OSError as exc:
            logger.warning("own plugin %s not available: %s", source, exc.strerror)
    return directory


def install_conf(config: NodeConfig, data: bytes) -> bool:
    return install_file(os.path.join(config.cni_conf_dir, CONF_NAME), data, 0o644, "conf")


def install_inventory(config: NodeConfig, data: bytes) -> bool:
    return install_file(os.path.join(config.multus_d, INVENTORY_NAME), data, 0o644, "inventory")


def uninstall(config: NodeConfig) -> list[str]:
    """Remove what we installed; the paths removed. The node's default network conf
    (never touched by us) is then the first conf again."""
    removed = []
    for path in (
        os.path.join(config.cni_conf_dir, CONF_NAME),
        os.path.join(config.multus_d, INVENTORY_NAME),
        config.thin_kubeconfig,
        config.thin_token,
        os.path.join(config.cni_bin_dir, SHIM_NAME),
    ):
        if path and remove(path):
            removed.append(path)
    thin = os.path.join(config.cni_bin_dir, THIN_NAME)
    if _is_our_thin_plugin(thin) and remove(thin):
        removed.append(thin)
    try:
        os.rmdir(config.multus_d)
        fsync_dir(config.cni_conf_dir)
    except OSError:
        pass  # not empty (files of others) or already gone
    return removed


def _is_our_thin_plugin(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 20)
    except OSError:
        return False
    return head.startswith(b"#!") and b"multus_cni/main.py" in head
