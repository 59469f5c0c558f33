"""Every Envoy configuration in the repository passes `envoy --mode validate`, with the filter
module path pointed at the local build (validation loads the module and runs the plugin's
configure step, so a bad plugin configuration fails it too). Kubernetes resources cannot be
applied here; the Envoy config and plugin configuration inside them are validated the same way."""
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, WASM, envoy_binary
import render

EXAMPLES = REPO / "examples"


def validate(config_text: str, tmp_path: Path, name: str = "envoy.yaml"):
    path = tmp_path / name
    path.write_text(config_text)
    out = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.stdout[-3000:] + out.stderr[-3000:])
    return out


def with_plugin_config(plugin_config: dict, tmp_path: Path):
    """The bootstrap template with this plugin configuration: Envoy loads the module and the
    filter's on_configure accepts (or rejects) it."""
    validate(render.render(str(WASM), 10000, 9901, "https://api.openai.com", json.dumps(plugin_config)), tmp_path)


def envoy_yaml_files():
    return sorted(p for p in (REPO / "envoy").glob("*.yaml")) + sorted((EXAMPLES / "envoy").glob("*.yaml"))


def test_every_envoy_yaml_in_the_repository_is_covered():
    files = {p.relative_to(REPO).as_posix() for p in REPO.rglob("*.yaml")
             if ".venv" not in p.parts and "target" not in p.parts and "node_modules" not in p.parts}
    covered = {p.relative_to(REPO).as_posix() for p in envoy_yaml_files()}
    kubernetes = {p.relative_to(REPO).as_posix() for p in (EXAMPLES / "istio").glob("*.yaml")} | \
                 {p.relative_to(REPO).as_posix() for p in (EXAMPLES / "envoy-gateway").glob("*.yaml")}
    assert files - covered - kubernetes == set(), "a YAML file no test validates"


@pytest.mark.parametrize("path", envoy_yaml_files(), ids=lambda p: p.name)
def test_envoy_bootstrap_validates(path, tmp_path):
    text = path.read_text().replace("/etc/envoy/tollgate_filter.wasm", str(WASM))
    assert str(WASM) in text, "the example loads the filter from /etc/envoy/tollgate_filter.wasm"
    validate(text, tmp_path)


def test_the_envoy_example_rejects_a_broken_plugin_config(tmp_path):
    """Guards the check above: validation really runs the plugin's configure step."""
    text = (EXAMPLES / "envoy" / "envoy.yaml").read_text().replace("/etc/envoy/tollgate_filter.wasm", str(WASM))
    text = text.replace('"max_request_body_bytes": 1048576', '"max_request_body_bytes": "lots"')
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    out = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "limits.max_request_body_bytes" in out.stdout + out.stderr


def test_istio_envoyfilter_wasm_config_validates(tmp_path):
    docs = list(yaml.safe_load_all((EXAMPLES / "istio" / "envoyfilter.yaml").read_text()))
    patches = docs[0]["spec"]["configPatches"]
    ext = next(p for p in patches if p["applyTo"] == "EXTENSION_CONFIG")["patch"]["value"]
    wasm = ext["typed_config"]
    # the EnvoyFilter is the strict request hold's example: the Envoy field and the filter's mode
    assert wasm["config"]["allow_on_headers_stop_iteration"] is True
    assert json.loads(wasm["config"]["configuration"]["value"])["request_hold"]["mode"] == "headers"
    # the module comes from a release URL in the example; validate against the local build
    wasm["config"]["vm_config"]["code"] = {"local": {"filename": str(WASM)}}
    ref = next(p for p in patches if p["applyTo"] == "HTTP_FILTER")["patch"]["value"]
    assert ref["name"] == ext["name"], "the HTTP filter refers to the extension by name"
    bootstrap = {
        "static_resources": {
            "listeners": [{
                "name": "gw", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "gw",
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                            {"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]},
                        "http_filters": [
                            {"name": ext["name"], "typed_config": wasm},
                            {"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                        ],
                    }}]}],
            }],
        },
    }
    validate(json.dumps(bootstrap), tmp_path, "istio.json")


def test_istio_wasmplugin_and_envoy_gateway_plugin_configs_are_accepted(tmp_path):
    plugin = next(yaml.safe_load_all((EXAMPLES / "istio" / "wasmplugin.yaml").read_text()))
    assert plugin["kind"] == "WasmPlugin" and plugin["spec"]["pluginName"] == "tollgate"
    with_plugin_config(plugin["spec"]["pluginConfig"], tmp_path)
    policy = next(yaml.safe_load_all((EXAMPLES / "envoy-gateway" / "envoyextensionpolicy.yaml").read_text()))
    assert policy["kind"] == "EnvoyExtensionPolicy" and policy["spec"]["wasm"][0]["rootID"] == "tollgate"
    with_plugin_config(policy["spec"]["wasm"][0]["config"], tmp_path)


def test_the_wasmplugin_and_envoy_gateway_examples_need_nothing_else():
    """Each works as one resource with the default request hold (ADR 0013): no patch setting
    allow_on_headers_stop_iteration, no strict mode asked of a host that cannot honour it."""
    for path in (EXAMPLES / "istio" / "wasmplugin.yaml", EXAMPLES / "envoy-gateway" / "envoyextensionpolicy.yaml"):
        docs = list(yaml.safe_load_all(path.read_text()))
        kinds = [d["kind"] for d in docs]
        assert "EnvoyPatchPolicy" not in kinds and "EnvoyFilter" not in kinds, (path, kinds)
        assert "allow_on_headers_stop_iteration" not in yaml.safe_dump_all(docs), path
        spec = docs[0]["spec"]
        config = spec.get("pluginConfig") or spec["wasm"][0]["config"]
        assert config.get("request_hold", {}).get("mode", "body") == "body", path


def test_the_plain_envoy_example_uses_the_default_hold():
    """The plain Envoy example needs no Envoy field either; the strict mode is only described in a
    comment."""
    text = (EXAMPLES / "envoy" / "envoy.yaml").read_text()
    filters = yaml.safe_load(text)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
    hcm = filters[0]["typed_config"]
    wasm = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm")["typed_config"]["config"]
    assert "allow_on_headers_stop_iteration" not in wasm
    assert json.loads(wasm["configuration"]["value"]).get("request_hold", {}).get("mode", "body") == "body"


def test_the_run_commands_default_plugin_config_is_accepted(tmp_path):
    with_plugin_config(json.loads((REPO / "envoy" / "dev-config.json").read_text()), tmp_path)


def test_the_limits_example_loads_and_envoy_and_the_cli_refuse_the_same_bad_limit(tmp_path):
    """`examples/limits.json` (docs/limits.md) is accepted by the filter inside Envoy; a limit of
    zero is refused by Envoy's configure step and by `tollgate check-config`, both naming the field."""
    example = json.loads((EXAMPLES / "limits.json").read_text())
    with_plugin_config(example, tmp_path)
    bad = json.loads(json.dumps(example))
    bad["tenant_limits"]["default"][1]["limit"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(render.render(str(WASM), 10000, 9901, "https://api.openai.com", json.dumps(bad)))
    out = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "tenant_limits.default[1].limit" in out.stdout + out.stderr
    bad_json = tmp_path / "bad.json"
    bad_json.write_text(json.dumps(bad))
    cli = REPO / "target" / "release" / "tollgate"  # `make e2e` builds it
    out = subprocess.run([str(cli), "check-config", str(bad_json)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "tenant_limits.default[1].limit" in out.stdout + out.stderr
