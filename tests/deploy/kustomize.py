"""A small, strict kustomize: builds an overlay from the features our kustomizations use.

No kustomize binary is packaged for Debian or PyPI, so tests/deploy/test_k8s.py builds the
overlays with this. It refuses any kustomization field it does not implement, so it cannot
silently ignore part of a kustomization; supported: resources, namespace, labels (pairs),
images (newTag/newName), configMapGenerator and secretGenerator (literals; behavior create/merge),
patches (JSON 6902 ops add/replace/remove, target by kind/name/labelSelector).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "configMapGenerator",
    "secretGenerator",
    "patches",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


class KustomizeError(Exception):
    pass


def build(path: Path) -> list[Obj]:
    kfile = path / "kustomization.yaml"
    if not kfile.exists():
        raise KustomizeError(f"{path} has no kustomization.yaml")
    k = yaml.safe_load(kfile.read_text(encoding="utf-8"))
    unknown = set(k) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported fields {sorted(unknown)}")
    objs: list[Obj] = []
    for res in k.get("resources", []):
        target = (path / res).resolve()
        if target.is_dir():
            objs += build(target)
        elif target.is_file():
            objs += [d for d in yaml.safe_load_all(target.read_text(encoding="utf-8")) if d]
        else:
            raise KustomizeError(f"{kfile}: resource {res} does not exist")
    for gen, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for g in k.get(gen, []):
            data = dict(lit.split("=", 1) for lit in g.get("literals", []))
            if set(g) - {"name", "literals", "behavior"}:
                raise KustomizeError(f"{kfile}: unsupported {gen} fields in {g['name']}")
            existing = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == g["name"]]
            if g.get("behavior", "create") == "merge":
                if not existing:
                    raise KustomizeError(f"{kfile}: merge into missing {kind} {g['name']}")
                existing[0].setdefault("data", {}).update(data)
            else:
                if existing:
                    raise KustomizeError(f"{kfile}: {kind} {g['name']} already exists")
                field = "stringData" if kind == "Secret" else "data"
                objs.append({"apiVersion": "v1", "kind": kind, "metadata": {"name": g["name"]}, field: data})
    for img in k.get("images", []):
        found = False
        for c in containers(objs):
            name, _, _tag = c["image"].partition(":")
            if name == img["name"]:
                c["image"] = f"{img.get('newName', name)}:{img['newTag']}"
                found = True
        if not found:
            raise KustomizeError(f"{kfile}: image {img['name']} is used by no container")
    for p in k.get("patches", []):
        targets = [o for o in objs if matches(o, p["target"])]
        if not targets:
            raise KustomizeError(f"{kfile}: patch target {p['target']} matches nothing")
        for o in targets:
            for op in yaml.safe_load(p["patch"]):
                apply_op(o, op)
    for pairs in k.get("labels", []):
        for o in objs:
            o["metadata"].setdefault("labels", {}).update(pairs["pairs"])
    if "namespace" in k:
        for o in objs:
            if o["kind"] not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = k["namespace"]
    return objs


def containers(objs: list[Obj]) -> list[Obj]:
    out = []
    for o in objs:
        spec = o.get("spec", {}).get("template", {}).get("spec", {})
        out += spec.get("containers", []) + spec.get("initContainers", [])
    return out


def matches(o: Obj, target: Obj) -> bool:
    if set(target) - {"kind", "name", "labelSelector"}:
        raise KustomizeError(f"unsupported patch target {target}")
    if "kind" in target and o["kind"] != target["kind"]:
        return False
    if "name" in target and o["metadata"]["name"] != target["name"]:
        return False
    if "labelSelector" in target:
        labels = o["metadata"].get("labels", {})
        for term in target["labelSelector"].split(","):
            key, _, value = term.partition("=")
            if labels.get(key) != value:
                return False
    return True


def apply_op(o: Obj, op: Obj) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
    parent = o
    for key in parts[:-1]:
        parent = parent[int(key)] if isinstance(parent, list) else parent[key]
    last = parts[-1]
    if op["op"] == "replace":
        if last not in parent:
            raise KustomizeError(f"replace of missing {op['path']} in {o['metadata']['name']}")
        parent[last] = copy.deepcopy(op["value"])
    elif op["op"] == "add":
        parent[last] = copy.deepcopy(op["value"])
    elif op["op"] == "remove":
        del parent[last]
    else:
        raise KustomizeError(f"unsupported patch op {op['op']}")
