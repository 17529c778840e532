"""Schemathesis against the OpenAPI schema: no request, valid or malformed, gets a 5xx; malformed ones get a 4xx.

In process (the app over ASGI, its pipelines loaded first), with the write token, so that generated documents are
written too; bounded by examples per operation (RANKSTACK_SCHEMATHESIS_EXAMPLES, default 25) and a deadline."""

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import negative_data_rejection  # noqa: E402

from tests.serve.conftest import TOKEN  # noqa: E402

EXAMPLES = int(os.environ.get("RANKSTACK_SCHEMATHESIS_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, collection_dir, indexes, cross_encoder_dir):
    from rankstack.serve.app import create_app
    from rankstack.serve.config import read_config
    from tests.serve.conftest import write_config

    config = write_config(tmp_path_factory.mktemp("schema"), collection_dir, indexes, cross_encoder_dir,
                          {"limits": {"query_chars": 500, "k": 200, "batch": 16, "candidates": 50,
                                      "body_bytes": 50_000, "request_seconds": 20}})
    app = create_app(read_config(config), token=TOKEN)
    app.state.service.load()  # schemathesis' ASGI client runs the lifespan per call: load once here, skip it there
    schema = schemathesis.openapi.from_asgi("/openapi.json", WithoutLifespan(app))
    yield schema
    app.state.service.close()


class WithoutLifespan:
    """The app, with lifespan events answered without running its start-up and shut-down."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return


OPERATIONS = ["GET /health", "GET /ready", "GET /metrics", "GET /api/pipelines", "GET /api/collection",
              "GET /api/queries", "POST /api/search", "POST /api/search/batch", "POST /api/rerank", "POST /api/fuse",
              "GET /api/documents/{doc_id}", "POST /api/documents", "PUT /api/documents/{doc_id}",
              "DELETE /api/documents/{doc_id}"]


def test_the_schema_lists_every_operation(api_schema):
    listed = [f"{op.method.upper()} {op.path}" for op in (r.ok() for r in api_schema.get_all_operations())]
    assert sorted(listed) == sorted(OPERATIONS)


#: Operations whose requests can be malformed (a body, or a typed parameter); the others take no input.
MALFORMABLE = [label for label in OPERATIONS if label.startswith(("POST", "PUT"))]


@pytest.mark.parametrize("label, mode", [(label, "positive") for label in OPERATIONS] +
                         [(label, "negative") for label in MALFORMABLE])
def test_no_request_gets_a_server_error(api_schema, label, mode):
    from schemathesis import GenerationMode

    method, path = label.split()
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    def check(case):
        response = case.call(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)  # writes fsync: be patient
        checks = [not_a_server_error, negative_data_rejection]
        if response.status_code == 413:  # a body over the limit is refused before it is read, valid or not
            checks = [not_a_server_error]
        case.validate_response(response, checks=checks)
        if response.status_code >= 400:
            # (a generated id may itself be the word "Traceback", echoed in the message: look for a real one)
            assert isinstance(response.json().get("message"), str)
            assert "Traceback (most recent call last)" not in response.text

    check()
