"""Offline validation of deploy/k8s: every base resource, and every overlay rendered the way
kustomize would for these overlays (strategic-merge patches by kind and name, images,
namespace), checked with kubernetes-validate in strict mode (unknown fields are errors), plus
the rules this deployment promises: probes, non-root read-only containers, resources, and
Secrets referenced rather than inlined.

    python deploy/k8s/validate.py        (pip install kubernetes-validate pyyaml)
"""

import copy
import pathlib
import sys

import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent
VERSION = "1.32.0"


def load(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def merge(base, patch):
    """A strategic merge for what these overlays patch: maps merge, lists of named maps merge
    by name, anything else is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(x, dict) and "name" in x for x in base + patch)
    ):
        out = [copy.deepcopy(x) for x in base]
        for p in patch:
            for i, b in enumerate(out):
                if b["name"] == p["name"]:
                    out[i] = merge(b, p)
                    break
            else:
                out.append(p)
        return out
    return copy.deepcopy(patch)


def render(kustomization):
    k = load(kustomization)[0]
    here = kustomization.parent
    docs = []
    for r in k.get("resources", []):
        path = (here / r).resolve()
        if path.is_dir():
            docs += render(path / "kustomization.yaml")
        else:
            docs += load(path)
    for p in k.get("patches", []):
        patch = load(here / p["path"])[0]
        target = p.get("target", {"kind": patch["kind"], "name": patch["metadata"]["name"]})
        hits = [
            i
            for i, d in enumerate(docs)
            if d["kind"] == target["kind"] and target.get("name", d["metadata"]["name"]) == d["metadata"]["name"]
        ]
        if not hits:
            raise SystemExit(f"{here / p['path']}: patches nothing ({target})")
        for i in hits:
            body = copy.deepcopy(patch)
            body["metadata"] = dict(body["metadata"], name=docs[i]["metadata"]["name"])
            docs[i] = merge(docs[i], body)
    for img in k.get("images", []):
        for d in docs:
            for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                name, _, tag = c["image"].partition(":")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', tag)}"
    if "namespace" in k:
        for d in docs:
            d["metadata"]["namespace"] = k["namespace"]
    return docs


def promises(doc, where):
    """What the deployment promises beyond the schema."""
    errors = []
    if doc["kind"] == "Secret":
        errors.append("a Secret is inlined: reference it, create it out of band")
    if doc["kind"] == "Deployment":
        pod = doc["spec"]["template"]["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            errors.append("runAsNonRoot is not set")
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation", True):
                errors.append(f"{c['name']}: not read-only, or may escalate")
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                errors.append(f"{c['name']}: readiness is not /readyz")
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                errors.append(f"{c['name']}: liveness is not /healthz")
            if not c.get("resources", {}).get("limits"):
                errors.append(f"{c['name']}: no resource limits")
            for e in c.get("env", []):
                if e["name"] in ("FAFNIR_MFA_KEY", "FAFNIR_SMTP_URL") and "value" in e:
                    errors.append(f"{c['name']}: {e['name']} inlined, not from a Secret")
                if e["name"] == "FAFNIR_DATABASE_URL" and e.get("value", "").startswith("postgres"):
                    errors.append(f"{c['name']}: a database URL (with its password) inlined")
    return [f"{where}: {doc['kind']}/{doc['metadata']['name']}: {e}" for e in errors]


def main():
    failures = []
    sets = {"base": render(ROOT / "base" / "kustomization.yaml")}
    for overlay in sorted((ROOT / "overlays").iterdir()):
        sets[f"overlays/{overlay.name}"] = render(overlay / "kustomization.yaml")
    for where, docs in sets.items():
        kinds = {}
        for d in docs:
            kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
            try:
                kubernetes_validate.validate(d, VERSION, strict=True)
            except Exception as e:  # noqa: BLE001 - every validation failure is reported
                failures.append(f"{where}: {d['kind']}/{d['metadata']['name']}: {e}")
            failures += promises(d, where)
        print(f"{where}: {len(docs)} resources valid for Kubernetes {VERSION} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
