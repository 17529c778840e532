"""`rankstack serve`: serve the pipelines of a JSON config over HTTP (API, MCP tools, page)."""

from __future__ import annotations

import logging
import sys


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the pipelines of a JSON config over HTTP: API, MCP tools and a page")
    p.add_argument("config", help="JSON file: indexes, stages, pipelines (as for experiment), documents, queries, "
                                  "qrels, serve settings (see README, 'Service')")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token-file", help="file holding the bearer token that writes (and protected reads) need; "
                                        "default: $RANKSTACK_TOKEN; without either, writes are refused")
    p.add_argument("--reads", choices=["open", "token"], help="whether reads need the token too (default: config)")
    p.add_argument("--threads", type=int, help="worker threads (default: config, else 64)")
    p.add_argument("--model-threads", type=int, help="torch threads for model calls (default: config, else torch's: "
                                                     "one per core; 1 on a machine other jobs share)")
    p.add_argument("--no-batching", action="store_true", help="run model calls per request, not micro-batched")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--access-log", action="store_true", help="log every request (method, path, status)")
    p.set_defaults(func=run)


def run(args) -> None:
    try:
        import uvicorn

        from rankstack.serve.access import load_token
        from rankstack.serve.app import create_app
        from rankstack.serve.config import read_config
    except ImportError as e:
        from rankstack.errors import RankstackError

        raise RankstackError(f"rankstack serve needs the server extra ({e.name} is missing): "
                             "pip install 'rankstack[server]'") from None

    overrides = {}
    if args.reads:
        overrides["reads"] = args.reads
    if args.threads is not None:
        overrides["threads"] = args.threads
    if args.model_threads is not None:
        overrides["model_threads"] = args.model_threads
    if args.no_batching:
        overrides["batching"] = False
    config = read_config(args.config, overrides)
    token = load_token(args.token_file)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server: uvicorn.Server | None = None
    failed: list[str] = []

    def stop(message: str) -> None:
        failed.append(message)
        if server is not None:
            server.should_exit = True

    app = create_app(config, token=token, host=args.host, on_failure=stop)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                                           access_log=args.access_log, timeout_graceful_shutdown=5,
                                           server_header=False))
    if token is None:
        print("rankstack: no token (--token-file, $RANKSTACK_TOKEN): document writes are refused", file=sys.stderr)
    server.run()
    if failed:
        from rankstack.errors import RankstackError

        raise RankstackError(f"cannot serve {args.config}: {failed[0]}")
