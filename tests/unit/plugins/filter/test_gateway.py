# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gateway_config and the gateway role's nginx templates, rendered from real plans."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.hardened.vllm.plugins.filter.cluster_plan import (
    FilterModule as PlanFilters,
)
from ansible_collections.hardened.vllm.plugins.filter.gateway import FilterModule
from ansible_collections.hardened.vllm.plugins.plugin_utils import _api_routes

ROOT = Path(__file__).parents[4]
TEMPLATES = ROOT / "roles" / "gateway" / "templates"
FACTS = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "facts" / "debian12_vm_network.json").read_text()
)
FILTERS = FilterModule().filters()
gateway_config = FILTERS["gateway_config"]
http2_on = FILTERS["gateway_http2_on"]
KEY_A = "Q2hhbmdlIG1lIGJ1dCBrZWVwIG1lIGxvbmcu+x/y=A"
KEY_B = "b" * 32
SETTINGS = {
    "keys": [{"name": "team-a", "key": KEY_A}, {"name": "team_b", "key": KEY_B}],
    "tls_ca_dir": "/srv/ansible/gateway-ca",
    "server_names": ["gpu-a.example.com"],
    "rate": 20,
    "burst": 40,
    "concurrency": 16,
    "read_timeout": 3600,
    "max_body_size": "16m",
}


def plans(**settings):
    def facts(ipv4):
        data = copy.deepcopy(FACTS)
        data["eth0"]["ipv4"]["address"] = ipv4
        return data

    hosts = {
        "node1": {"ansible_facts": facts("10.0.0.11"), "cluster_node_role": "head"},
        "node2": {"ansible_facts": facts("10.0.0.12"), "cluster_node_role": "worker"},
    }
    cluster = {
        "cluster_topology": "data_parallel",
        "cluster_network": ["10.0.0.0/24"],
        "cluster_client_cidrs": ["192.0.2.0/24"],
        "cluster_monitoring_cidrs": ["198.51.100.0/28", "2001:db8:5::/64"],
        **settings,
    }
    return PlanFilters().filters()["cluster_plan"](hosts, list(hosts), cluster)


HEAD, WORKER = plans()["node1"], plans()["node2"]


def config(plan=HEAD, **overrides):
    return gateway_config(plan, {**SETTINGS, **overrides})


def problems(**overrides):
    with pytest.raises(AnsibleFilterError) as err:
        config(**overrides)
    return str(err.value)


# --- gateway_config -----------------------------------------------------------------------


def test_head_gets_listen_names_routes_monitoring_and_tenants_never_keys():
    gw = config()
    assert gw["serves_api"] and gw["host"] == "node1"
    assert gw["listen"] == ["10.0.0.11:8000"] and gw["port"] == 8000
    assert gw["cert_names"] == {"dns": ["node1", "gpu-a.example.com"], "ips": ["10.0.0.11"]}
    assert [r["path"] for r in gw["routes"]] == sorted(_api_routes.DEFAULT_ALLOWED)
    assert {"path": "/v1/models", "methods": ["GET"]} in gw["routes"]
    assert gw["monitoring_routes"] == ["/health", "/metrics"]
    assert gw["monitoring_sources"] == ["198.51.100.0/28", "2001:db8:5::/64"]
    assert gw["socket"] == "/run/hardened-vllm/api.sock" and gw["socket_group"] == "vllm-api"
    assert gw["tenants"] == ["team-a", "team_b"]
    assert gw["tls"] == {"source": "generate", "mutual": False}
    assert KEY_A not in json.dumps(gw) and KEY_B not in json.dumps(gw)


def test_headless_worker_serves_nothing_and_is_not_checked():
    assert gateway_config(WORKER, {}) == {"serves_api": False, "host": "node2"}


@pytest.mark.parametrize(
    ("address", "listen", "ips"),
    [
        ("0.0.0.0", ["0.0.0.0:8000"], ["10.0.0.11"]),
        ("::", ["[::]:8000 ipv6only=off"], ["10.0.0.11"]),
    ],
)
def test_wildcard_api_addresses_listen_everywhere_and_name_the_host_ip(address, listen, ips):
    head = copy.deepcopy(HEAD)
    head["api"]["address"] = address
    gw = config(head)
    assert gw["listen"] == listen and gw["cert_names"]["ips"] == ips


def test_ipv6_api_address_is_bracketed_and_named():
    head = copy.deepcopy(HEAD)
    head["api"]["address"] = "2001:db8::11"
    gw = config(head)
    assert gw["listen"] == ["[2001:db8::11]:8000"]
    assert gw["cert_names"]["ips"] == ["2001:db8::11", "10.0.0.11"]


def test_operator_certificate_and_mutual_tls():
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
    gw = config(tls_certificate=pem, tls_private_key=key, tls_ca=pem, client_ca=pem)
    assert gw["tls"] == {"source": "operator", "mutual": True}


@pytest.mark.parametrize(
    ("overrides", "variable", "words"),
    [
        ({"keys": []}, "gateway_keys", "no client key: nobody could call the API"),
        ({"keys": "k" * 40}, "gateway_keys", "must be a list of {name, key}"),
        ({"keys": [{"name": "a", "key": "short"}]}, "gateway_keys[0].key", "shorter than 32"),
        ({"keys": [{"name": "a", "key": "x" * 31}]}, "gateway_keys[0].key", "shorter than 32"),
        ({"keys": [{"name": "a", "key": "x" * 31 + '"'}]}, "gateway_keys[0].key", "characters"),
        ({"keys": [{"name": "a", "key": "x" * 20 + " " + "y" * 20}]}, "gateway_keys[0].key", ""),
        ({"keys": [{"name": "a", "key": "x" * 201}]}, "gateway_keys[0].key", "longer than 200"),
        ({"keys": [{"name": "a b", "key": KEY_A}]}, "gateway_keys[0].name", "not a tenant name"),
        ({"keys": [{"name": "a", "key": KEY_A, "rate": 1}]}, "gateway_keys[0]", "exactly name"),
        (
            {"keys": [{"name": "a", "key": KEY_A}, {"name": "a", "key": KEY_B}]},
            "gateway_keys[1].name",
            "a is listed twice",
        ),
        (
            {"keys": [{"name": "a", "key": KEY_A}, {"name": "b", "key": KEY_A.upper()}]},
            "gateway_keys[1].key",
            "equals the key of a ignoring case",
        ),
        ({"tls_ca_dir": ""}, "gateway_tls_certificate", "no certificate source"),
        ({"tls_ca_dir": "gateway-ca"}, "gateway_tls_ca_dir", "must be an absolute directory"),
        ({"tls_certificate": "-----BEGIN CERTIFICATE-----"}, "gateway_tls_private_key", "empty"),
        ({"tls_private_key": "-----BEGIN PRIVATE KEY-----"}, "gateway_tls_certificate", "empty"),
        ({"client_ca": "not a pem"}, "gateway_client_ca", "not a PEM certificate"),
        ({"rate": 0}, "gateway_rate", "whole number from 1"),
        ({"rate": "fast"}, "gateway_rate", "whole number"),
        ({"burst": -1}, "gateway_burst", "whole number from 0"),
        ({"concurrency": True}, "gateway_concurrency", "whole number"),
        ({"read_timeout": 0}, "gateway_read_timeout", "whole number from 1"),
        ({"max_body_size": "16 MB"}, "gateway_client_max_body_size", "nginx size"),
        ({"server_names": ["bad_name"]}, "gateway_tls_server_names[0]", "not a DNS name"),
        ({"server_names": "gpu-a"}, "gateway_tls_server_names", "must be a list"),
    ],
)
def test_bad_settings_name_host_variable_and_fix(overrides, variable, words):
    text = problems(**overrides)
    assert "no host was changed" in text
    assert f"host node1, variable {variable}: " in text
    assert words in text and "Fix: " in text
    assert KEY_A not in text and KEY_B not in text


def test_operator_certificate_without_ca_is_refused():
    pem = "-----BEGIN CERTIFICATE-----\n"
    key = "-----BEGIN EC PRIVATE KEY-----\n"
    text = problems(tls_certificate=pem, tls_private_key=key)
    assert "variable gateway_tls_ca: is empty, but your own certificate is set" in text


def test_every_problem_is_reported_at_once():
    text = problems(keys=[{"name": "a", "key": "short"}], tls_ca_dir="", rate=0)
    assert text.count("- host node1") == 3


def test_input_that_is_not_a_plan_says_what_to_run():
    with pytest.raises(AnsibleFilterError, match="run the cluster role first"):
        gateway_config({"nope": 1}, SETTINGS)


@pytest.mark.parametrize(
    ("version", "on"),
    [
        ("nginx version: nginx/1.22.1", False),
        ("1.25.0", False),
        ("1.25.1", True),
        ("nginx version: nginx/1.26.3", True),
        ("", False),
    ],
)
def test_http2_directive_follows_the_nginx_version(version, on):
    assert http2_on(version) is on


# --- the templates, rendered as the role renders them -------------------------------------


def render(name, gw, **extra):
    variables = {
        "ansible_managed": "Ansible managed",
        "inventory_hostname": gw["host"],
        "__gateway": gw,
        "__gateway_http2_on": False,
        "__gateway_dir": "/etc/hardened-vllm/gateway",
        "__gateway_tls_dir": "/etc/hardened-vllm/gateway/tls",
        "__gateway_conf": "/etc/hardened-vllm/gateway/nginx.conf",
        "__gateway_run_dir": "/run/hardened-vllm-gateway",
        "__gateway_state_dir": "/var/lib/hardened-vllm-gateway",
        "__gateway_nginx": "/usr/sbin/nginx",
        "gateway_service_name": "hardened-vllm-gateway.service",
        "gateway_user": "vllm-gateway",
        "gateway_firewall_unit": "hardened-vllm-firewall.service",
        "gateway_keys": SETTINGS["keys"],
        "gateway_upstream_key": "vllm-own-key-0123456789abcdef",
        **extra,
    }
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template((TEMPLATES / name).read_text()))


def locations(text):
    """{location: body} of the server block (exact and prefix locations, named ones)."""
    return dict(re.findall(r"\n        location (\S+(?: \S+)?) \{\n(.*?)\n        \}", text, re.S))


def test_only_the_allowlist_and_monitoring_routes_have_locations_everything_else_is_404():
    text = render("nginx.conf.j2", config())
    found = locations(text)
    exact = {name.split()[1] for name in found if name.startswith("= ")}
    assert exact == set(_api_routes.DEFAULT_ALLOWED) | set(_api_routes.MONITORING)
    assert "return 404" in found["/"] and "proxy_pass" not in found["/"]
    for path in ("/invocations", "/tokenize", "/docs", "/openapi.json", "/sleep"):
        assert f"location = {path} " not in text


def test_allowlisted_routes_check_method_then_key_before_anything_reaches_vllm():
    found = locations(render("nginx.conf.j2", config()))
    body = found["= /v1/chat/completions"]
    method, key, proxy = (
        body.index("$request_method !~ ^(POST)$"),
        body.index('if ($hv_tenant = "")'),
        body.index("proxy_pass http://hv_vllm/v1/chat/completions$is_args$args;"),
    )
    assert method < key < proxy
    assert "return 405" in body and "return 401" in body
    assert "limit_req zone=hv_rate burst=40 nodelay;" in body
    assert "limit_conn hv_conn 16;" in body
    assert "include /etc/hardened-vllm/gateway/proxy.conf;" in body


def test_monitoring_routes_answer_only_the_monitoring_audience_without_a_key():
    text = render("nginx.conf.j2", config())
    body = locations(text)["= /metrics"]
    assert body.index("if ($hv_monitoring = 0)") < body.index("proxy_pass http://hv_vllm/metrics")
    assert "$hv_tenant" not in body
    geo = text[text.index("geo $hv_monitoring") :].split("}")[0]
    assert "198.51.100.0/28 1;" in geo and "2001:db8:5::/64 1;" in geo and "default 0;" in geo


def test_tls_listen_http2_syntax_and_mutual_tls():
    old = render("nginx.conf.j2", config())
    assert "listen 10.0.0.11:8000 ssl http2;" in old and "http2 on;" not in old
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in old and "ssl_verify_client" not in old
    new = render(
        "nginx.conf.j2",
        config(client_ca="-----BEGIN CERTIFICATE-----"),
        **{"__gateway_http2_on": True},
    )
    assert "listen 10.0.0.11:8000 ssl;" in new and "http2 on;" in new
    assert "ssl_verify_client on;" in new
    assert "ssl_client_certificate /etc/hardened-vllm/gateway/tls/client-ca.pem;" in new


def test_workers_run_as_the_socket_group_and_log_the_tenant_never_the_key():
    text = render("nginx.conf.j2", config())
    assert "user vllm-gateway vllm-api;" in text
    assert "server unix:/run/hardened-vllm/api.sock;" in text
    log = text[text.index("log_format") : text.index("access_log")]
    assert "$hv_tenant" in log
    assert "authorization" not in log.lower() and "$request " not in log and "$args" not in log


def test_keys_are_looked_up_by_hash_then_matched_exactly():
    text = render("keys.conf.j2", config())
    assert f'"Bearer {KEY_A}" team-a;' in text
    assert f'"~^team_b Bearer {KEY_B}$" team_b;' in text
    escaped = re.escape(KEY_A)
    assert f'"~^team\\-a Bearer {escaped}$" team-a;' in text
    # The regex, as nginx reads it (backslashes kept), matches the key only, case-sensitively.
    pattern = re.search(r'"~(\^team\\-a [^"]+)"', text).group(1)
    assert re.fullmatch(pattern, f"team-a Bearer {KEY_A}")
    assert not re.fullmatch(pattern, f"team-a Bearer {KEY_A.swapcase()}")
    assert not re.fullmatch(pattern, f"team-a Bearer {KEY_A}x")


def test_vllm_gets_its_own_key_and_a_fixed_host_never_the_clients():
    text = render("proxy.conf.j2", config())
    assert 'proxy_set_header Authorization "Bearer vllm-own-key-0123456789abcdef";' in text
    assert "proxy_set_header Host localhost;" in text
    assert "proxy_buffering off;" in text
    assert "proxy_read_timeout 3600s;" in text
    assert "\nproxy_pass" not in text  # each location names its own upstream path
    empty = render("proxy.conf.j2", config(), gateway_upstream_key="")
    assert 'proxy_set_header Authorization "";' in empty


def test_unit_requires_the_firewall_checks_config_and_reloads_gracefully():
    text = render("gateway.service.j2", config())
    assert "Requires=hardened-vllm-firewall.service" in text
    assert (
        "ExecStartPre=/usr/sbin/nginx -t -q -e stderr -c /etc/hardened-vllm/gateway/nginx.conf"
        in text
    )
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    assert "KillSignal=SIGQUIT" in text
    assert "ProtectSystem=strict" in text and "NoNewPrivileges=yes" in text
    free = render("gateway.service.j2", config(), gateway_firewall_unit="")
    assert "Requires=" not in free


# --- disaggregated: the router behind the gateway ------------------------------------------

ROUTER_KEY = "r" * 40


def pd_plans(**settings):
    def facts(ipv4):
        data = copy.deepcopy(FACTS)
        data["eth0"]["ipv4"]["address"] = ipv4
        return data

    hosts = {
        "pre1": {"ansible_facts": facts("10.0.0.11"), "cluster_node_role": "prefill"},
        "dec1": {"ansible_facts": facts("10.0.0.12"), "cluster_node_role": "decode"},
        "dec2": {"ansible_facts": facts("10.0.0.13"), "cluster_node_role": "decode"},
    }
    cluster = {
        "cluster_topology": "disaggregated",
        "cluster_network": ["10.0.0.0/24"],
        "cluster_client_cidrs": ["192.0.2.0/24"],
        **settings,
    }
    return PlanFilters().filters()["cluster_plan"](hosts, list(hosts), cluster)


def pd_config(host="dec1", **overrides):
    return gateway_config(pd_plans()[host], {**SETTINGS, "router_key": ROUTER_KEY, **overrides})


def test_other_topologies_have_no_router_and_render_as_before():
    assert config()["router"] is None
    text = render("nginx.conf.j2", config())
    assert "hv_router" not in text and "$hv_generate" not in text
    assert "limit_req_zone $hv_tenant zone=hv_rate" in text
    assert "hv-router" not in render("keys.conf.j2", config())


def test_the_plan_gives_every_api_node_a_loopback_router_over_all_prefill_and_decode_nodes():
    router = pd_config("pre1")["router"]
    assert router == {
        "address": "127.0.0.1",
        "port": 8100,
        "routes": ["/v1/chat/completions", "/v1/completions"],
        "prefill": [
            {
                "host": "pre1",
                "url": "https://10.0.0.11:8000",
                "kv_host": "10.0.0.11",
                "kv_port": 5600,
            }
        ],
        "decode": [
            {"host": "dec1", "url": "https://10.0.0.12:8000"},
            {"host": "dec2", "url": "https://10.0.0.13:8000"},
        ],
        "tenant": "hv-router",
    }
    assert pd_config("dec2")["router"] == router


def test_generation_routes_go_to_the_router_only_the_routers_key_reaches_vllm_unlimited():
    text = render("nginx.conf.j2", pd_config(), gateway_router_key=ROUTER_KEY)
    found = locations(text)
    for path in ("/v1/completions", "/v1/chat/completions"):
        assert f"proxy_pass http://$hv_generate{path}$is_args$args;" in found[f"= {path}"]
    assert "proxy_pass http://hv_vllm/v1/models$is_args$args;" in found["= /v1/models"]
    assert "server 127.0.0.1:8100;" in text
    generate = text[text.index("map $hv_tenant $hv_generate") :].split("}")[0]
    assert "default hv_router;" in generate and '"hv-router" hv_vllm;' in generate
    assert "limit_req_zone $hv_limited_tenant zone=hv_rate" in text
    limited = text[text.index("map $hv_tenant $hv_limited_tenant") :].split("}")[0]
    assert '"hv-router" "";' in limited
    keys = render("keys.conf.j2", pd_config(), gateway_router_key=ROUTER_KEY)
    assert f'"Bearer {ROUTER_KEY}" hv-router;' in keys
    assert f'"~^hv\\-router Bearer {ROUTER_KEY}$" hv-router;' in keys


def test_the_router_key_tenant_and_mutual_tls_are_checked():
    def refused(**overrides):
        with pytest.raises(AnsibleFilterError) as err:
            pd_config(**overrides)
        return str(err.value)

    assert "variable gateway_router_key: must be 32-200" in refused(router_key="short")
    assert "variable gateway_router_key: equals a client key" in refused(router_key=KEY_B.upper())
    taken = refused(keys=[{"name": "hv-router", "key": KEY_A}])
    assert "the tenant name hv-router is the router's own" in taken
    assert "mutual TLS with the disaggregated router" in refused(
        client_ca="-----BEGIN CERTIFICATE-----"
    )


def test_inference_routes_the_router_does_not_drive_are_refused_in_disaggregated():
    with pytest.raises(AnsibleFilterError) as err:
        pd_plans(cluster_api_routes=["/v1/completions", "/v1/embeddings", "/v1/models"])
    assert "/v1/embeddings is an inference route the disaggregated router does not drive" in str(
        err.value
    )
    assert plans(cluster_api_routes=["/v1/embeddings"])["node1"]["api"]["routes"][0]["path"] == (
        "/v1/embeddings"
    )


def test_router_unit_runs_unprivileged_confined_after_the_firewall():
    text = render(
        "router.service.j2",
        pd_config(),
        gateway_router_user="vllm-router",
        __gateway_router_lib="/usr/local/libexec/hardened-vllm/router.py",
        __gateway_router_dir="/etc/hardened-vllm/router",
    )
    assert "User=vllm-router" in text and "Requires=hardened-vllm-firewall.service" in text
    assert "CapabilityBoundingSet=\n" in text and "NoNewPrivileges=yes" in text
    assert "ProtectSystem=strict" in text and "SystemCallFilter=@system-service" in text
    assert (
        "ExecStart=/usr/bin/python3 -I /usr/local/libexec/hardened-vllm/router.py "
        "/etc/hardened-vllm/router/router.json"
    ) in text
