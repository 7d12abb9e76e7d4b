"""Process-wide logging: structlog JSON on one stream, PHI masked before rendering.

``configure_logging(settings)`` is called once at process start (workers, CLI,
tests). Both structlog loggers and plain ``logging`` loggers (temporalio,
botocore, asyncpg...) end up in one handler on the root logger and are rendered
as one JSON object per line with an ISO-8601 UTC ``timestamp``, ``level``,
``logger`` and ``event``. Every record goes through the processors of
``clinflow.phi_mask`` first: identifiers become tokens, PHI-named fields are
redacted, PHI-shaped strings are scrubbed.

Tokens need the keyring's ``"token"`` key. When no keyring can be loaded,
identifier fields are redacted instead (never logged raw) and one warning says
so.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from typing import IO, Any, Final

import structlog
from structlog.typing import Processor

from clinflow.keyring import Keyring, KeyringError
from clinflow.phi_mask import TokeniseIdentifiers, mask_phi_fields, scrub_phi_patterns
from clinflow.settings import Settings
from clinflow.tokenise import Tokeniser

#: Loggers that never log below these levels: at DEBUG, botocore and urllib3 dump
#: request bodies and headers (object contents, signatures) into the log.
THIRD_PARTY_LEVELS: Final[Mapping[str, int]] = {
    "botocore": logging.INFO,
    "aiobotocore": logging.INFO,
    "s3transfer": logging.INFO,
    "urllib3": logging.INFO,
}


class LoggingConfigError(ValueError):
    """The logging settings cannot be applied (for example an unknown level name)."""

    def __init__(self, setting: str, value: object, reason: str) -> None:
        super().__init__(f"{setting}={value!r}: {reason}")
        self.setting = setting
        self.value = value


# One tokenising processor for the whole process: reconfiguring swaps its key,
# so loggers cached by structlog pick the new key up too.
_TOKENISE: Final = TokeniseIdentifiers(tokeniser=None)
_LOCK: Final = threading.Lock()
_HANDLER_FLAG: Final = "_clinflow_log_handler"


def phi_processors() -> list[Processor]:
    """The PHI-protecting processors, in the order they must run."""
    return [_TOKENISE, mask_phi_fields, scrub_phi_patterns]


def _shared_processors() -> list[Processor]:
    """Processors for every record, structlog's own and those from ``logging``."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.StackInfoRenderer(),
        # Render exceptions to text first, so the scrubber sees the traceback text.
        structlog.processors.format_exc_info,
        *phi_processors(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def _level(settings: Settings) -> int:
    name = settings.log_level.strip().upper()
    level = logging.getLevelNamesMapping().get(name)
    if level is None:
        raise LoggingConfigError("log_level", settings.log_level, "not a logging level name")
    return level


def _load_tokeniser(settings: Settings, keyring: Keyring | None) -> tuple[Tokeniser | None, str]:
    """The log tokeniser, or ``None`` and the reason it is unavailable."""
    try:
        ring = keyring if keyring is not None else Keyring.load(settings)
        return Tokeniser.from_keyring(ring), ""
    except KeyringError as exc:
        return None, str(exc)


def configure_logging(
    settings: Settings,
    *,
    stream: IO[str] | None = None,
    keyring: Keyring | None = None,
) -> None:
    """Route structlog and ``logging`` through the PHI processors to ``stream`` as JSON.

    ``stream`` defaults to stderr; ``keyring`` defaults to ``Keyring.load(settings)``.
    Idempotent: calling it again replaces the handler it installed before
    (never stacks a second one) and switches to the new key, level and stream;
    handlers installed by others on the root logger are left alone.

    Raises ``LoggingConfigError`` for an unknown ``settings.log_level``. A missing
    or malformed keyring is not an error: identifiers are then redacted.
    """
    level = _level(settings)
    tokeniser, unavailable = _load_tokeniser(settings, keyring)
    renderer: Processor = (
        structlog.processors.JSONRenderer(default=str)
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *_shared_processors()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_FLAG, True)

    with _LOCK:
        _TOKENISE.tokeniser = tokeniser
        root = logging.getLogger()
        for old in [h for h in root.handlers if getattr(h, _HANDLER_FLAG, False)]:
            root.removeHandler(old)
            old.close()
        root.addHandler(handler)
        root.setLevel(level)
        for name, floor in THIRD_PARTY_LEVELS.items():
            logging.getLogger(name).setLevel(max(level, floor))
        logging.captureWarnings(True)
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                structlog.stdlib.PositionalArgumentsFormatter(),
                *_shared_processors(),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            context_class=dict,
            cache_logger_on_first_use=True,
        )

    if tokeniser is None:
        get_logger(__name__).warning(
            "log tokenisation key unavailable; identifier fields are redacted",
            reason=unavailable,
        )


def _configure_fallback() -> None:
    """Masking-only structlog setup for code that logs before ``configure_logging``.

    Identifiers are redacted (no key is loaded here) and output goes through
    plain ``logging`` as already-rendered JSON text.
    """
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            *_shared_processors(),
            structlog.processors.JSONRenderer(default=str),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str, **initial_values: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger named ``name`` (use ``__name__``), optionally pre-bound.

    Safe before ``configure_logging``: if structlog is not configured yet, a
    masking-only configuration is installed first, so nothing logged early
    escapes the PHI processors.
    """
    with _LOCK:
        if not structlog.is_configured():
            _configure_fallback()
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name, **initial_values)
    return logger
