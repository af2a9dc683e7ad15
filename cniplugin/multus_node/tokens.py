"""The thin plugin's credentials on the host: a kubeconfig whose token never expires
under it.

Service-account tokens are bound and rotate (kubelet refreshes the agent's own token
file well before expiry). The agent writes `multus.d/multus.kubeconfig` once, pointing
at a token *file* next to it (`tokenFile`, which the plugin re-reads on every API
call), and copies its current token into that file whenever the token changes, so a
node that runs for months does not start failing ADDs with 401. Both files are 0600
and written atomically.
"""

from __future__ import annotations

import base64
import logging
import threading

import yaml

from . import installing
from .config import NodeConfig

logger = logging.getLogger("multus_node.tokens")

CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"


class TokenRefresher:
    def __init__(self, config: NodeConfig, server: str, ca_file: str = CA_FILE) -> None:
        self.config = config
        self.server = server
        self.ca_file = ca_file
        self.token_path = config.thin_token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tokens", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def kubeconfig(self) -> bytes:
        cluster: dict[str, object] = {"server": self.server}
        try:
            with open(self.ca_file, "rb") as handle:
                cluster["certificate-authority-data"] = base64.b64encode(handle.read()).decode()
        except OSError:
            pass  # http, or a CA the system trusts
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": cluster}],
            "users": [{"name": "multus", "user": {"tokenFile": self.token_path}}],
            "contexts": [{"name": "multus", "context": {"cluster": "local", "user": "multus"}}],
            "current-context": "multus",
        }
        return yaml.safe_dump(doc, sort_keys=False).encode()

    def refresh(self) -> bool:
        """Bring both files up to date; True when the token was rewritten."""
        try:
            with open(self.config.token_file, "rb") as handle:
                token = handle.read().strip()
        except OSError as exc:
            logger.warning("token file %s: %s", self.config.token_file, exc.strerror)
            return False
        installing.install_file(self.config.thin_kubeconfig, self.kubeconfig(), 0o600, "kubeconfig")
        return installing.install_file(self.token_path, token + b"\n", 0o600, "token")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.refresh():
                    logger.info("thin-mode token refreshed in %s", self.token_path)
            except OSError as exc:
                logger.error("cannot write the thin-mode kubeconfig: %s", exc)
            self._stop.wait(self.config.token_refresh_interval)
