"""Check requests against Zendesk's own OpenAPI documents (path, method, parameters, body).

Reusable by any test that captures Zendesk requests (``responses``)::

    from tests.adapters.openapi import assert_zendesk_calls   # or the fixture of the same
    assert_zendesk_calls(responses.calls)                      # name in tests/adapters

The documents are ``support-api.yaml`` and ``webhooks-api.yaml`` of the shared reference
folder (``../shared/reference/zendesk-openapi`` beside the repository, or the folder named by
``CARE_ZENDESK_OPENAPI``). Loading notes from its SOURCE.txt: the YAML holds a bare ``=``
that YAML 1.1 reads as a "value" tag (read here as the string), and a few path parameters
are unresolved, so the documents are used without whole-document validation.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml  # type: ignore[import-untyped]
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest

__all__ = [
    "assert_zendesk_calls",
    "assert_zendesk_request",
    "openapi_dir",
    "zendesk_openapi",
]

ENV_DIR = "CARE_ZENDESK_OPENAPI"
SUPPORT = "support-api.yaml"
WEBHOOKS = "webhooks-api.yaml"
#: Any credentials: the documents require Basic auth, the values are not checked.
_PLACEHOLDER_AUTH = "Basic dGVzdEBleGFtcGxlLmNvbS90b2tlbjp0ZXN0"


def openapi_dir() -> Path:
    """The folder holding Zendesk's OpenAPI documents.

    :raises FileNotFoundError: not found (says where it looked and how to point to it).
    """
    configured = os.environ.get(ENV_DIR)
    repo = Path(__file__).resolve().parents[2]
    candidates = [Path(configured)] if configured else []
    candidates.append(repo.parent / "shared" / "reference" / "zendesk-openapi")
    for folder in candidates:
        if (folder / SUPPORT).is_file() and (folder / WEBHOOKS).is_file():
            return folder
    looked = ", ".join(str(folder) for folder in candidates)
    raise FileNotFoundError(
        f"Zendesk's OpenAPI documents not found (looked in {looked}); set {ENV_DIR}"
    )


class _Loader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """Safe loader that reads YAML 1.1's "value" tag (a bare ``=``) as a plain string."""


_Loader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


@functools.cache
def zendesk_openapi(document: str) -> OpenAPI:
    """The parsed document (``support-api.yaml`` or ``webhooks-api.yaml``), once per process."""
    with (openapi_dir() / document).open(encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=_Loader)  # noqa: S506 - a safe loader subclass
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def _document_for(url: str) -> str:
    # The Webhooks API is its own document, with /api/v2 in its server URL.
    return WEBHOOKS if urlsplit(url).path.startswith("/api/v2/webhooks") else SUPPORT


def _validate(request: requests.PreparedRequest) -> None:
    method, url = request.method or "", request.url or ""
    document = _document_for(url)
    if "Authorization" not in request.headers:
        request.headers["Authorization"] = _PLACEHOLDER_AUTH
    try:
        zendesk_openapi(document).validate_request(RequestsOpenAPIRequest(request))
    except Exception as err:  # every openapi-core error becomes one readable assertion
        detail = f"{type(err).__name__}: {err}"
        cause = err.__cause__
        if cause is not None:
            detail += f" ({type(cause).__name__}: {cause})"
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        raise AssertionError(
            f"{method} {url} does not match Zendesk's {document}: {detail}\nbody: {body}"
        ) from None


def assert_zendesk_request(
    method: str, url: str, body: Any = None, *, headers: Mapping[str, str] | None = None
) -> None:
    """Assert that Zendesk documents this request: path and method exist, parameters and the
    JSON body match the schemas.

    :param body: the JSON body (a dict...), or ``None`` for none.
    :raises AssertionError: naming the request and what does not match.
    """
    prepared = requests.Request(
        method.upper(),
        url,
        data=None if body is None else json.dumps(body),
        headers={
            **({"Content-Type": "application/json"} if body is not None else {}),
            **dict(headers or {}),
        },
    ).prepare()
    _validate(prepared)


def assert_zendesk_calls(calls: Iterable[Any]) -> int:
    """Assert :func:`assert_zendesk_request` for every call ``responses`` recorded.

    :returns: how many requests were checked.
    """
    count = 0
    for call in calls:
        request = call.request
        body = request.body
        data = None if body in (None, b"", "") else json.loads(body)
        assert_zendesk_request(request.method, request.url, data)
        count += 1
    return count
