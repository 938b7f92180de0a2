"""The OpenAPI document at /api/openapi.json against the server that serves it: every documented
operation is answered with a documented status and a body matching its schema, and every method the
document does not list for a path is refused (405); unknown paths get 404. (The unit test
api_routes_test.cpp checks the document against the server's route table both ways.)"""
import pytest

import sfapi
import sfharness as h

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@pytest.fixture(scope="module")
def srv(module_servers):
    return module_servers(role="all")


@pytest.fixture(scope="module")
def api(srv):
    return sfapi.Api(srv)


@pytest.fixture(scope="module")
def doc(api):
    status, j, _ = api("GET", "/api/openapi.json", key=None)
    assert status == 200
    return j


def node_ref(ref):
    assert ref.startswith("#/"), ref
    return ref[2:].split("/")


def deref(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        target = doc
        for part in node_ref(node["$ref"]):
            target = target[part]
        node = target
    return node


def validate(doc, schema, value, where="$"):
    schema = deref(doc, schema)
    if "allOf" in schema:
        for s in schema["allOf"]:
            validate(doc, s, value, where)
        return
    if value is None:
        assert schema.get("nullable"), f"{where}: null not allowed"
        return
    t = schema.get("type")
    checks = {"object": dict, "array": list, "string": str, "boolean": bool}
    if t in checks:
        assert isinstance(value, checks[t]), f"{where}: expected {t}, got {value!r}"
    elif t == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: expected integer, got {value!r}"
    elif t == "number":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}: expected number"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if t == "object":
        for r in schema.get("required", []):
            assert r in value, f"{where}: missing {r}"
        for k, v in value.items():
            if k in schema.get("properties", {}):
                validate(doc, schema["properties"][k], v, f"{where}.{k}")
    if t == "array":
        for i, v in enumerate(value):
            validate(doc, schema.get("items", {}), v, f"{where}[{i}]")


def test_document_is_openapi_3_with_every_contract_route(doc):
    assert doc["openapi"].startswith("3.")
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item if m != "parameters"}
    contract = {("GET", "/api/openapi.json"), ("GET", "/api/whoami"), ("GET", "/api/streams"),
                ("POST", "/api/streams"), ("GET", "/api/streams/{name}"), ("PATCH", "/api/streams/{name}"),
                ("DELETE", "/api/streams/{name}"), ("GET", "/api/streams/{name}/keys"),
                ("POST", "/api/streams/{name}/keys"), ("POST", "/api/streams/{name}/keys/{id}/rotate"),
                ("DELETE", "/api/streams/{name}/keys/{id}"), ("POST", "/api/streams/{name}/tokens"),
                ("GET", "/api/apikeys"), ("POST", "/api/apikeys"), ("DELETE", "/api/apikeys/{id}"),
                ("GET", "/api/webhooks/deliveries")}
    assert contract <= ops, contract - ops


def example(api, path, ctx):
    return path.replace("{name}", ctx["stream"]).replace("{id}", ctx.get("id", "x"))


def test_every_documented_operation_answers_as_documented(srv, api, doc):
    """Each operation, in an order that keeps its resources alive, with a valid request."""
    api.create_stream("docs-target")
    bodies = {
        ("POST", "/api/streams"): {"name": "docs-new"},
        ("PATCH", "/api/streams/{name}"): {"latency": "hls"},
        ("POST", "/api/streams/{name}/keys/{id}/rotate"): {"grace_s": 10},
        ("POST", "/api/streams/{name}/tokens"): {"ttl_s": 60},
        ("POST", "/api/apikeys"): {"name": "docs", "scopes": ["tokens"]},
        ("POST", "/api/ingest/check"): {"key": "sfk_unknown"},
    }
    order = ["GET /api/openapi.json", "GET /api/whoami", "GET /api/streams", "POST /api/streams",
             "GET /api/streams/{name}", "PATCH /api/streams/{name}", "GET /api/streams/{name}/keys",
             "POST /api/streams/{name}/keys", "POST /api/streams/{name}/keys/{id}/rotate",
             "DELETE /api/streams/{name}/keys/{id}", "POST /api/streams/{name}/tokens", "GET /api/apikeys",
             "POST /api/apikeys", "GET /api/apikeys/{id}", "DELETE /api/apikeys/{id}", "GET /api/webhooks/deliveries",
             "POST /api/ingest/check", "DELETE /api/streams/{name}"]
    documented = {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item if m != "parameters"}
    assert set(order) == documented, set(order) ^ documented
    ctx = {"stream": "docs-target"}
    for op_name in order:
        method, path = op_name.split(" ", 1)
        op = doc["paths"][path][method.lower()]
        if path.startswith("/api/apikeys/"):
            ctx["id"] = ctx["apikey"]
        elif "{id}" in path:
            ctx["id"] = ctx["streamkey"]
        status, j, text = api(method, example(api, path, ctx), bodies.get((method, path)))
        assert str(status) in op["responses"], (op_name, status, text)
        assert 200 <= status < 300, (op_name, status, text)
        response = deref(doc, op["responses"][str(status)])
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema:
            validate(doc, schema, j, op_name)
        if op_name == "POST /api/streams/{name}/keys":
            ctx["streamkey"] = j["id"]
        if op_name == "POST /api/streams/{name}/keys/{id}/rotate":
            ctx["streamkey"] = j["id"]
        if op_name == "POST /api/apikeys":
            ctx["apikey"] = j["id"]


def test_documented_errors_have_the_error_schema(api, doc):
    for method, path, expect in [("GET", "/api/streams/nosuch", "404"), ("POST", "/api/streams", "400"),
                                 ("GET", "/api/whoami", "401")]:
        status, j, _ = api(method, path, {} if method == "POST" else None, key=None if expect == "401" else "default")
        assert str(status) == expect
        op = doc["paths"][path.replace("nosuch", "{name}")][method.lower()]
        schema = deref(doc, op["responses"][expect])["content"]["application/json"]["schema"]
        validate(doc, schema, j)


def test_methods_not_documented_are_refused(api, doc):
    for path, item in doc["paths"].items():
        concrete = path.replace("{name}", "docs-x").replace("{id}", "x")
        for m in METHODS:
            if m.lower() in item:
                continue
            status = api(m, concrete, {} if m in ("POST", "PUT", "PATCH") else None)[0]
            assert status == 405, (m, path, status)


@pytest.mark.parametrize("path", ["/api", "/api/", "/api/stream", "/api/streams/a/b", "/api/streams/a/keys/b/c",
                                  "/api/apikeys/a/b", "/api/webhooks", "/api/openapi.yaml"])
def test_undocumented_paths_are_404(api, path):
    assert api("GET", path)[0] == 404
