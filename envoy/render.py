"""Renders envoy/tollgate.yaml.tmpl into an Envoy bootstrap.

python3 envoy/render.py --wasm PATH [--listen 10000] [--admin 9901] [--upstream http://127.0.0.1:18081]
                        [--plugin-config FILE] [--access-log PATH] > envoy.yaml
"""
import argparse
import json
import string
import sys
from pathlib import Path
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent

TLS = """      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: {host}"""


# the collector's gRPC ingest (HTTP/2, plaintext on loopback); the filter's `collector.cluster`
COLLECTOR = """    - name: tollgate_collector
      type: STRICT_DNS
      connect_timeout: 2s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options: {{}}
      load_assignment:
        cluster_name: tollgate_collector
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {{ address: {host}, port_value: {port} }}"""


def render(wasm: str, listen: int, admin: int, upstream: str, plugin_config: str,
           access_log: str = "/dev/stdout", extra_http_filters: str = "", with_filter: bool = True,
           collector: str = "", header_hold: bool = False) -> str:
    """`extra_http_filters`: YAML list items (indented 18 spaces) placed before the filter, e.g.
    a `jwt_authn` filter whose verified claims the tenant rules read. `header_hold`: set
    `allow_on_headers_stop_iteration: true` (for the strict request hold); without it the Wasm
    filter config is what Istio's WasmPlugin and Envoy Gateway render."""
    u = urlparse(upstream)
    tls = u.scheme == "https"
    port = u.port or (443 if tls else 80)
    # the plugin configuration is JSON inside a single-quoted YAML scalar
    config = json.dumps(json.loads(plugin_config or "{}"), separators=(",", ":")).replace("'", "''")
    text = (HERE / "tollgate.yaml.tmpl").read_text()
    if not with_filter:  # the same Envoy without Tollgate (benchmark baseline)
        lines, keep = [], True
        for line in text.splitlines(keepends=True):
            if "# tollgate-filter-begin" in line:
                keep = False
            elif "# tollgate-filter-end" in line:
                keep = True
            elif keep:
                lines.append(line)
        text = "".join(lines)
    tmpl = string.Template(text)
    return tmpl.substitute(
        LISTEN_PORT=listen, ADMIN_PORT=admin, UPSTREAM_HOST=u.hostname, UPSTREAM_PORT=port,
        UPSTREAM_TLS=TLS.format(host=u.hostname) if tls else "", WASM_PATH=wasm, PLUGIN_CONFIG=config,
        ACCESS_LOG=access_log, EXTRA_HTTP_FILTERS=extra_http_filters.rstrip("\n"),
        HEADER_HOLD="                        allow_on_headers_stop_iteration: true" if header_hold else "",
        EXTRA_CLUSTERS=COLLECTOR.format(host=collector.rsplit(":", 1)[0], port=collector.rsplit(":", 1)[1]) if collector else "",
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wasm", required=True)
    ap.add_argument("--listen", type=int, default=10000)
    ap.add_argument("--admin", type=int, default=9901)
    ap.add_argument("--upstream", default="http://127.0.0.1:18081")
    ap.add_argument("--plugin-config", help="JSON file with the filter configuration")
    ap.add_argument("--access-log", default="/dev/stdout", help="where Envoy writes its access log")
    ap.add_argument("--header-hold", action="store_true",
                    help="set allow_on_headers_stop_iteration: true (strict request hold)")
    ap.add_argument("--collector", default="", help="host:port of the collector's gRPC ingest (adds the tollgate_collector cluster)")
    a = ap.parse_args()
    cfg = Path(a.plugin_config).read_text() if a.plugin_config else "{}"
    sys.stdout.write(render(str(Path(a.wasm).resolve()), a.listen, a.admin, a.upstream, cfg, a.access_log,
                                collector=a.collector, header_hold=a.header_hold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
