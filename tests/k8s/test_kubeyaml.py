"""The kubeconfig YAML subset parser: whatever it returns is exactly what
`yaml.safe_load` returns; everything else it declines (and PyYAML takes over)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from multus_cni.k8s import kubeyaml

KUBEADM = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=
    server: https://10.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: system:node:worker-1
  name: system:node:worker-1@kubernetes
current-context: system:node:worker-1@kubernetes
kind: Config
preferences: {}
users:
- name: system:node:worker-1
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
"""

MULTUS = """\
# Kubeconfig file for Multus CNI plugin.
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      server: https://[fd00:10:96::1]:443
      certificate-authority-data: "LS0tLS1CRUdJTg=="
users:
  - name: multus
    user:
      token: 'eyJhbGciOiJSUzI1NiIs''quoted'
contexts:
  - name: multus-context
    context:
      cluster: local
      user: multus
current-context: multus-context
"""

FLAGS = """\
---
clusters:
- name: c
  cluster:
    server: http://127.0.0.1:8080
    insecure-skip-tls-verify: true
    proxy-url:
users:
- name: u
  user:
    exec:
      command: aws
      args:
      - eks
      - get-token
      env: []
"""


@pytest.mark.parametrize("text", [KUBEADM, MULTUS, FLAGS])
def test_real_kubeconfigs_parse_like_pyyaml(text: str) -> None:
    assert kubeyaml.load(text) == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1",  # int
        "a: yes",  # YAML 1.1 boolean
        "a: null",
        "a: ~",
        "a: 2001-12-14",  # timestamp
        "a: .inf",
        "a: &x b",  # anchor
        "a: *x",
        "a: !!str b",
        "a: [b, c]",
        "a: {b: c}",
        "a: |\n  text",
        "a: >\n  text",
        'a: "esc\\n"',
        "a: 'open",
        "a: b # comment",
        "a: b\n  c",  # a multi-line plain scalar
        "a:\tb",
        "? a\n: b",
        "a: b\na: c",  # duplicate key
        "yes: b",
        "1: b",
        "- - a",
        "a: b: c",
        "  a: b",
        "%YAML 1.1\n---\na: b",
        "a: b\n---\nc: d",
        "",
        "# only a comment",
    ],
)
def test_outside_the_subset_is_declined(text: str) -> None:
    with pytest.raises(kubeyaml.Unsupported):
        kubeyaml.load(text)


_key = st.text("abcdefghij-_./", min_size=1, max_size=6).filter(
    lambda k: k[0] not in "-./" and k not in ("y", "n")
)
_string = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12
)
_leaf = st.none() | st.booleans() | _string | st.integers(-5, 5)
_doc = st.recursive(
    _leaf,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_key, kids, min_size=1, max_size=3),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_doc, st.sampled_from([2, 4]), st.booleans())
def test_generated_block_yaml_agrees_with_pyyaml(doc: Any, indent: int, sort: bool) -> None:
    text = yaml.safe_dump(
        {"root": doc}, default_flow_style=False, indent=indent, sort_keys=sort, width=10_000
    )
    try:
        parsed = kubeyaml.load(text)
    except kubeyaml.Unsupported:
        return
    assert parsed == yaml.safe_load(text)


_token = st.sampled_from(
    ["a", "b:", "- ", "  ", ": ", "'", '"', "#", "\n", "true", "1", "x y", "[]", "{}", "-"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_token, max_size=20).map("".join))
def test_arbitrary_text_never_disagrees(text: str) -> None:
    try:
        parsed = kubeyaml.load(text)
    except kubeyaml.Unsupported:
        return
    assert parsed == yaml.safe_load(text)
