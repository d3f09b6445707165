"""The HTTP face of the Files and Batches APIs: routes ``/v1/files*`` and ``/v1/batches*``.

Paths, methods and bodies are OpenAI's, so the official SDK's ``client.files`` and
``client.batches`` work unchanged; every refusal is OpenAI's error envelope.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from fanwise.simulator import bodies
from fanwise.simulator.batches import ApiError, BatchService
from fanwise.simulator.reply import JSON
from fanwise.simulator.request import RequestError, json_object

PREFIXES = ("/v1/files", "/v1/batches")
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/v1/files"), "upload"),
    ("GET", re.compile(r"/v1/files"), "list_files"),
    ("GET", re.compile(r"/v1/files/(?P<id>[^/]+)"), "file"),
    ("DELETE", re.compile(r"/v1/files/(?P<id>[^/]+)"), "delete_file"),
    ("GET", re.compile(r"/v1/files/(?P<id>[^/]+)/content"), "content"),
    ("POST", re.compile(r"/v1/batches"), "create"),
    ("GET", re.compile(r"/v1/batches"), "list"),
    ("GET", re.compile(r"/v1/batches/(?P<id>[^/]+)"), "retrieve"),
    ("POST", re.compile(r"/v1/batches/(?P<id>[^/]+)/cancel"), "cancel"),
]


async def handle(service: BatchService, request: web.BaseRequest) -> web.StreamResponse:
    """Answer one request under ``PREFIXES``."""
    for method, pattern, name in _ROUTES:
        found = pattern.fullmatch(request.path)
        if found and request.method == method:
            try:
                return await _HANDLERS[name](service, request, found.groupdict().get("id", ""))
            except ApiError as exc:
                body = bodies.error_body(exc.status, exc.message, param=exc.param, code=exc.code)
                return _json(body, exc.status)
    message = f"Invalid URL ({request.method} {request.path})"
    return _json(bodies.error_body(404, message, code="unknown_url"), 404)


async def _upload(service: BatchService, request: web.BaseRequest, _: str) -> web.Response:
    form = await request.post()
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, web.FileField):
        raise ApiError(400, "Missing required parameter: 'file'.", param="file")
    return _json(service.upload(upload.filename, str(purpose), upload.file.read()))


async def _list_files(service: BatchService, request: web.BaseRequest, _: str) -> web.Response:
    return _json(service.list_files())


async def _file(service: BatchService, request: web.BaseRequest, file_id: str) -> web.Response:
    return _json(service.file(file_id).to_dict())


async def _delete(service: BatchService, request: web.BaseRequest, file_id: str) -> web.Response:
    return _json(service.delete_file(file_id))


async def _content(service: BatchService, request: web.BaseRequest, file_id: str) -> web.Response:
    stored = service.file(file_id)
    return web.Response(body=stored.data, headers={"Content-Type": "application/octet-stream"})


async def _create(service: BatchService, request: web.BaseRequest, _: str) -> web.Response:
    try:
        body = json_object(await request.read())
    except RequestError as exc:
        raise ApiError(400, exc.message) from None
    return _json(service.create(body))


async def _list(service: BatchService, request: web.BaseRequest, _: str) -> web.Response:
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise ApiError(400, "limit must be a whole number", param="limit") from None
    return _json(service.list(max(1, min(limit, 100)), request.query.get("after")))


async def _retrieve(service: BatchService, request: web.BaseRequest, batch_id: str) -> web.Response:
    return _json(service.retrieve(batch_id))


async def _cancel(service: BatchService, request: web.BaseRequest, batch_id: str) -> web.Response:
    return _json(service.cancel(batch_id))


_Handler = Callable[[BatchService, web.BaseRequest, str], Awaitable[web.Response]]
_HANDLERS: dict[str, _Handler] = {
    "upload": _upload,
    "list_files": _list_files,
    "file": _file,
    "delete_file": _delete,
    "content": _content,
    "create": _create,
    "list": _list,
    "retrieve": _retrieve,
    "cancel": _cancel,
}


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=bodies.dumps(data), headers={"Content-Type": JSON})


__all__ = ["PREFIXES", "handle"]
