"""tokendist-client: get Feishu's access token from tokendist, in plain Python.

The drop-in replacement of the seed's "fetch the token from 腾讯云函数,
check it has not expired" code, with the standard library only::

    from tokendist_client import create_client
    client = create_client(CONFIG)          # the seed's CONFIG dict, unchanged
    token = client.get_access_token()

See README.md for the options, the fallbacks (Gitee, a cache file) and
``with_token`` (report a token Feishu calls invalid and retry once).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

from .client import RecordInfo, RecordSource, ReportResult, TokendistClient
from .errors import ErrorCode, SourceName, TokendistError
from .feishu import FEISHU_INVALID_TOKEN_CODES, is_feishu_invalid_token_error, is_invalid_token_error
from .options import GiteeOptions, Logger, build_options, invalid_url_for
from .record import TokenField, fingerprint, validate_record

__version__ = "0.1.0"

__all__ = [
    "create_client", "TokendistClient", "TokendistError", "RecordInfo", "ReportResult",
    "GiteeOptions", "Logger", "ErrorCode", "RecordSource", "SourceName", "TokenField",
    "is_feishu_invalid_token_error", "is_invalid_token_error", "invalid_url_for", "validate_record", "fingerprint",
    "FEISHU_INVALID_TOKEN_CODES", "__version__",
]

# A library is silent until the program configures logging.
logging.getLogger("tokendist_client").addHandler(logging.NullHandler())


def create_client(config: Mapping[str, Any] | None = None, *,
                  api_url: str | Sequence[str] | None = None,
                  read_key: str | None = None,
                  min_remaining_seconds: float | None = None,
                  gitee: GiteeOptions | None = None,
                  cache_file: str | os.PathLike[str] | None = None,
                  name: str | None = None,
                  field: TokenField | None = None,
                  timeout: float | None = None,
                  refresh_wait: float | None = None,
                  logger: Logger | None = None,
                  share_key: str | Sequence[str] | None = None) -> TokendistClient:
    """A client; raises TokendistError ``ECONFIG`` when the configuration is wrong.

    ``config`` is the seed's ``CONFIG`` dict (or ``os.environ``); keywords win:

    * ``api_url`` – tokendist URL(s), tried in order: ``https://host/release/get-token``,
      ``https://host/v1/tokens/NAME`` or ``https://host:port``
      (``TOKENDIST_URLS`` / ``TENCENT_CLOUD_API_URL``; skipped when
      ``TENCENT_CLOUD_ENABLED`` is False)
    * ``read_key`` – sent as ``Authorization: Bearer`` to the endpoints (``TOKENDIST_READ_KEY``)
    * ``min_remaining_seconds`` – a token with this many seconds left or fewer is
      not served (default: the record's platform's need -- 300 for Feishu/Lark/DingTalk,
      60 for WeChat, 0 for WeCom; ``-1`` says the same; ``TOKENDIST_MIN_REMAINING``)
    * ``gitee`` – the fallback file: ``{"owner", "repo", "path", "branch",
      "access_token", "base_url"}`` (``GITEE_*``, unless ``ENABLE_GITEE_TOKEN_SHARE`` is False)
    * ``cache_file`` – the last good record is kept here (0600) and read last
      (``TOKENDIST_CACHE_FILE``)
    * ``name`` – the token name, ``[a-z0-9_]{1,64}`` (default ``default``; ``TOKENDIST_TOKEN_NAME``)
    * ``field`` – ``access_token`` (default) or ``tenant_access_token`` (``TOKENDIST_FIELD``)
    * ``timeout`` – seconds per HTTP request (default 5; ``TOKENDIST_HTTP_TIMEOUT``)
    * ``refresh_wait`` – after ``report_invalid``, how many seconds the next get
      waits for a token other than the reported one (default 5)
    * ``logger`` – default ``logging.getLogger("tokendist_client")``; tokens are
      only ever logged as fingerprints
    * ``share_key`` – the key(s) of a sealed Gitee copy, as ``tokendist keygen``
      prints them (comma-separated, or a list; ``TOKENDIST_SHARE_KEY``): the
      file must then be sealed with one of them, and a plaintext one is
      refused.  Needs the ``cryptography`` package (``tokendist-client[sealed]``)
    """
    return TokendistClient(build_options(
        config, api_url=api_url, read_key=read_key, min_remaining_seconds=min_remaining_seconds,
        gitee=gitee, cache_file=cache_file, name=name, field=field, timeout=timeout,
        refresh_wait=refresh_wait, logger=logger, share_key=share_key))
