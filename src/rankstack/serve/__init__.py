"""rankstack as a service: the pipelines of a JSON config over HTTP (an API, MCP tools, a search page).

    rankstack serve serve.json --token-file token.txt       # or: create_app(read_config("serve.json"))

Modules, one job each: `config` (the JSON config), `collection` (building what is served), `service` (running
requests in worker threads: deadlines, locks, per-stage scores), `batching` (micro-batching model calls), `access`
(token, body limit), `limits`, `errors`, `metrics` (Prometheus), `schemas` (request bodies), `highlight`,
`texts` (rerankers' texts per request), `mcp_tools`, `app` (the FastAPI app), `static/` (the page). Needs the
server extra: pip install 'rankstack[server]'.
"""
