"""What our middleware shares: each runs synchronously or asynchronously, as the handler below it
does, so that an async view (the API's wait) is reached without a thread held for it.

Django runs a chain of middleware asynchronously only if every one of them can; one that cannot
holds a thread for the whole of each request it passes on, while the view awaits.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware


def _async_if_below(middleware: Any, get_response: Any) -> None:
    """Make `middleware` a coroutine function if the handler below it is one."""
    middleware.is_async = iscoroutinefunction(get_response)
    if middleware.is_async:
        markcoroutinefunction(middleware)


class Middleware:
    """`before` each request, `after` its answer; subclasses say what, in plain sync code."""

    sync_capable = True
    async_capable = True
    is_async: bool

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        _async_if_below(self, get_response)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        state = self.before(request)
        return self.after(request, self.get_response(request), state)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        state = self.before(request)
        response = await self.get_response(request)
        return await self.after_async(request, response, state)

    def before(self, request: HttpRequest) -> Any:
        return None

    def after(self, request: HttpRequest, response: Any, state: Any) -> Any:
        return response

    async def after_async(self, request: HttpRequest, response: Any, state: Any) -> Any:
        """`after`, from async code: override where it touches the database."""
        return self.after(request, response, state)


class StaticFiles(WhiteNoiseMiddleware):
    """WhiteNoise (which serves /static/), able to pass requests on asynchronously too."""

    sync_capable = True
    async_capable = True
    is_async: bool

    def __init__(self, get_response: Any = None, **kwargs: Any) -> None:
        super().__init__(get_response, **kwargs)
        _async_if_below(self, get_response)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request: HttpRequest) -> Any:
        path = request.path_info
        if not path.startswith(self.static_prefix):  # every file it serves is under it (no WHITENOISE_ROOT)
            return await self.get_response(request)
        # Finding and opening a file touches the disk: in a thread, as briefly as that.
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(path)
        else:
            static_file = self.files.get(path)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)
