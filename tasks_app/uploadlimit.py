"""An upload handler that stops reading a file at ``UPLOAD_MAX_BYTES``, whatever the request says.

``Content-Length`` is the first check of ``POST /uploads/`` (a body without one, chunked, is
refused with 411: Django would read it as empty), but it allows for the multipart overhead,
so a file may pass it while over the limit. Django's multipart parser hands every chunk of a file to each upload
handler in turn (``django/http/multipartparser.py``, ``receive_data_chunk``); this one, first
in the list, counts the bytes and raises ``StopUpload`` once they pass the limit, so the file
is never stored and the view answers 413. (The ASGI server has the body by then: daphne,
through Twisted, reads a whole request before the application runs. A TLS proxy in front
should cap bodies too, e.g. nginx ``client_max_body_size``.)
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadhandler import FileUploadHandler, StopUpload


class UploadLimit(FileUploadHandler):
    """Stops the upload once a file's bytes exceed ``limit_bytes``; ``exceeded`` and
    ``received`` (bytes of the file read so far) tell the view what happened."""

    def __init__(self, limit_bytes: int, request: Any = None) -> None:
        super().__init__(request)
        self.limit_bytes = limit_bytes
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        """Pass the chunk on to the next handler, or stop the upload past the limit."""
        self.received = start + len(raw_data)
        if self.received > self.limit_bytes:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        """The next handlers make the file; this one only counted."""
        return None
