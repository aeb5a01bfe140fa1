"""deploy/ manifests validated strictly against the upstream CRDs in tests/fixtures/upstream/.

Each manifest is matched to its CRD by group, kind and served version, and validated against that version's
openAPIV3Schema made strict the way the API server treats unknown fields under strict field validation:
wherever a schema gives `properties` and neither `additionalProperties` nor
`x-kubernetes-preserve-unknown-fields`, an unknown field is an error. ObjectMeta is not in a CRD's schema
(the API server checks it itself), so `metadata` is checked here against the few fields the manifests use.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream"
CRD_FILES = ("argo-rollouts/crds/analysis-template-crd.yaml", "flagger/crd.yaml")
GATE = ROOT / "deploy" / "canary-gate"
MANIFESTS = ("analysistemplate.yaml", "flagger-canary.yaml")
OBJECT_META = {"name", "namespace", "labels", "annotations"}

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def _crd_schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, kind, version) -> openAPIV3Schema of every served version of every CRD we carry."""
    schemas = {}
    for rel in CRD_FILES:
        for crd in yaml.load_all((UPSTREAM / rel).read_text(), Loader=Loader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served"):
                    key = (spec["group"], spec["names"]["kind"], version["name"])
                    schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def strict(schema: Any) -> Any:
    """A copy of a structural schema where unknown fields are errors, as the API server's strict validation."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) if k in _SUBSCHEMA_KEYS else v for k, v in schema.items()}
    if "properties" in out:
        out["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


_SUBSCHEMA_KEYS = {"items", "additionalProperties", "anyOf", "allOf", "oneOf", "not"}


def _schema_for(doc: dict[str, Any]) -> dict[str, Any]:
    group, _, version = doc["apiVersion"].partition("/")
    key = (group, doc["kind"], version)
    schemas = _crd_schemas()
    assert key in schemas, f"no served CRD version for {key}; have {sorted(schemas)}"
    return schemas[key]


def errors(doc: dict[str, Any], *, strict_fields: bool = True) -> list[str]:
    """Every schema error in one manifest, as 'path: message' (empty when valid)."""
    schema = _schema_for(doc)
    if strict_fields:
        schema = strict(schema)
    validator = jsonschema.Draft4Validator(schema)
    found = ["/".join(str(p) for p in e.absolute_path) + ": " + e.message for e in validator.iter_errors(doc)]
    meta = doc.get("metadata", {})
    found += [f"metadata/{k}: unknown ObjectMeta field" for k in sorted(set(meta) - OBJECT_META)]
    for field in ("labels", "annotations"):
        found += [
            f"metadata/{field}/{k}: value must be a string"
            for k, v in (meta.get(field) or {}).items()
            if not isinstance(v, str)
        ]
    if not isinstance(meta.get("name"), str) or not meta["name"]:
        found.append("metadata/name: required")
    return found


def _load(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((GATE / name).read_text()) if d is not None]
    assert len(docs) == 1, f"{name}: one document expected"
    return docs[0]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return _load("analysistemplate.yaml")


@pytest.fixture(scope="module")
def canary() -> dict[str, Any]:
    return _load("flagger-canary.yaml")


# ---------------------------------------------------------------------------------------- the CRD index


def test_the_crds_we_validate_against_are_served() -> None:
    keys = set(_crd_schemas())
    assert ("argoproj.io", "AnalysisTemplate", "v1alpha1") in keys
    assert ("flagger.app", "Canary", "v1beta1") in keys


def test_strict_closes_objects_but_leaves_open_maps_and_preserved_fields_open() -> None:
    schema = _crd_schemas()[("argoproj.io", "AnalysisTemplate", "v1alpha1")]
    s = strict(schema)
    assert s["additionalProperties"] is False
    metric = s["properties"]["spec"]["properties"]["metrics"]["items"]
    assert metric["additionalProperties"] is False
    web = metric["properties"]["provider"]["properties"]["web"]
    assert web["additionalProperties"] is False
    assert web["properties"]["headers"]["items"]["additionalProperties"] is False
    assert "additionalProperties" not in web["properties"]["jsonBody"]  # x-kubernetes-preserve-unknown-fields
    assert "additionalProperties" not in schema  # the original is untouched
    hook = strict(_crd_schemas()[("flagger.app", "Canary", "v1beta1")])["properties"]["spec"]["properties"][
        "analysis"
    ]["properties"]["webhooks"]["items"]
    assert hook["additionalProperties"] is False
    assert hook["properties"]["metadata"]["additionalProperties"] == {"type": "string"}  # a map stays a map


# ------------------------------------------------------------------------------------- the manifests


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_valid_against_its_crd_strictly(name: str) -> None:
    assert errors(_load(name)) == []


def test_every_yaml_under_deploy_canary_gate_is_checked() -> None:
    found = sorted(p.relative_to(GATE).as_posix() for p in GATE.rglob("*.y*ml"))
    assert found == sorted(MANIFESTS)


# ------------------------------------------------------------------------ strictness, proven both ways


def _metric(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["metrics"][0]


def test_a_misspelled_analysis_field_fails_only_because_validation_is_strict(
    template: dict[str, Any],
) -> None:
    bad = copy.deepcopy(template)
    m = _metric(bad)
    m["sucessCondition"] = m.pop("successCondition")
    assert errors(bad, strict_fields=False) == []  # the plain schema would let the typo through, silently
    found = errors(bad)
    assert len(found) == 1 and found[0].startswith("spec/metrics/0: ") and "sucessCondition" in found[0]


def test_a_misspelled_web_provider_field_fails(template: dict[str, Any]) -> None:
    bad = copy.deepcopy(template)
    web = _metric(bad)["provider"]["web"]
    web["jsonpath"] = web.pop("jsonPath")
    found = errors(bad)
    assert len(found) == 1 and found[0].startswith("spec/metrics/0/provider/web: ") and "jsonpath" in found[0]


@pytest.mark.parametrize(
    ("where", "field", "value"),
    [
        (("provider", "web"), "timeoutSeconds", "10"),  # integer
        ((), "interval", 60),  # string
        (("provider", "web"), "headers", {"Authorization": "Bearer x"}),  # array of {key, value}
        ((), "count", 1.5),  # int-or-string
    ],
)
def test_a_wrong_type_in_the_analysis_template_fails(
    template: dict[str, Any], where: tuple[str, ...], field: str, value: Any
) -> None:
    bad = copy.deepcopy(template)
    node = _metric(bad)
    for key in where:
        node = node[key]
    node[field] = value
    found = errors(bad)
    assert found and all(f.startswith("/".join(("spec", "metrics", "0", *where, field))) for f in found), (
        found
    )


def test_preserve_unknown_fields_stays_open(template: dict[str, Any]) -> None:
    ok = copy.deepcopy(template)
    ok["spec"]["metrics"][0]["provider"]["web"]["jsonBody"] = {"anything": {"nested": [1, 2]}}
    assert errors(ok) == []


def test_a_missing_required_field_fails(template: dict[str, Any]) -> None:
    bad = copy.deepcopy(template)
    del _metric(bad)["provider"]["web"]["url"]
    assert errors(bad) == ["spec/metrics/0/provider/web: 'url' is a required property"]


@pytest.mark.parametrize(
    ("field", "value", "expect"),
    [
        ("typ", "rollout", "typ"),  # misspelled field
        ("type", "post-promotion", "is not one of"),  # not a webhook type Flagger knows
        ("timeout", 10, "is not of type 'string'"),  # wrong type
        ("timeout", "ten seconds", "does not match"),  # Flagger's duration pattern
        ("metadata", {"tenant": 7}, "is not of type 'string'"),  # metadata is a string map
    ],
)
def test_a_bad_flagger_webhook_fails(canary: dict[str, Any], field: str, value: Any, expect: str) -> None:
    bad = copy.deepcopy(canary)
    hook = bad["spec"]["analysis"]["webhooks"][1]
    if field == "typ":
        del hook["type"]
    hook[field] = value
    found = errors(bad)
    assert len(found) == 1 and found[0].startswith("spec/analysis/webhooks/1") and expect in found[0], found


def test_a_misspelled_canary_field_fails(canary: dict[str, Any]) -> None:
    bad = copy.deepcopy(canary)
    bad["spec"]["analysis"]["webhook"] = bad["spec"]["analysis"].pop("webhooks")
    found = errors(bad)
    assert len(found) == 1 and found[0].startswith("spec/analysis: ") and "webhook" in found[0]


def test_an_unknown_metadata_field_fails(canary: dict[str, Any]) -> None:
    bad = copy.deepcopy(canary)
    bad["metadata"]["label"] = {"a": "b"}
    assert errors(bad) == ["metadata/label: unknown ObjectMeta field"]


# ------------------------------------------------------------------------------------- the contracts


def test_analysis_template_speaks_the_gate_contract(template: dict[str, Any]) -> None:
    m = _metric(template)
    assert m["successCondition"] == 'result.verdict in ["promote","continue"]'
    assert m["failureCondition"] == 'result.verdict == "rollback"'
    assert m["interval"] == "1m"
    assert (m["failureLimit"], m["inconclusiveLimit"]) == (0, 0)
    assert isinstance(m["count"], int) and m["count"] > 1
    web = m["provider"]["web"]
    assert web["jsonPath"] == "{$}"
    assert web.get("method", "GET") == "GET" and "body" not in web and "jsonBody" not in web
    assert web["timeoutSeconds"] <= 10
    url = urlsplit(web["url"])
    assert (url.scheme, url.hostname, url.port, url.path) == (
        "http",
        "fleetlens-gate.fleetlens.svc",
        8080,
        "/v1/argo/verdict",
    )
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query == {
        "tenant": "{{args.tenant}}",
        "model": "{{args.model}}",
        "baseline": "{{args.stable-hash}}",
        "canary": "{{args.canary-hash}}",
    }
    headers = {h["key"]: h["value"] for h in web["headers"]}
    assert headers["Authorization"] == "Bearer {{args.gate-token}}"


def test_analysis_template_args_are_declared_used_and_the_token_comes_from_a_secret(
    template: dict[str, Any],
) -> None:
    args = {a["name"]: a for a in template["spec"]["args"]}
    assert set(args) == {"tenant", "model", "stable-hash", "canary-hash", "gate-token"}
    text = yaml.safe_dump(template["spec"]["metrics"])
    for name in args:
        assert f"{{{{args.{name}}}}}" in text, f"arg {name} is declared but never used"
    token = args["gate-token"]
    assert "value" not in token
    assert set(token["valueFrom"]["secretKeyRef"]) == {"name", "key"}
    for name in ("tenant", "model", "stable-hash", "canary-hash"):
        assert set(args[name]) == {"name"}, f"{name} is for the Rollout to supply"


def test_flagger_canary_calls_the_gate_for_each_hook_type(canary: dict[str, Any]) -> None:
    analysis = canary["spec"]["analysis"]
    assert analysis["interval"] == "1m"
    hooks = analysis["webhooks"]
    assert sorted(h["type"] for h in hooks) == sorted(
        ["pre-rollout", "rollout", "confirm-promotion", "rollback"]
    )
    for hook in hooks:
        url = urlsplit(hook["url"])
        assert (url.scheme, url.hostname, url.port) == ("http", "fleetlens-gate.fleetlens.svc", 8080)
        assert url.path == f"/v1/flagger/{hook['type']}" and not url.query
        assert hook["metadata"] == {"tenant": "team-chat", "model": "llama-3.1-8b-instruct"}
    assert canary["spec"]["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chat-8b"}
