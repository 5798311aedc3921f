"""The run's console log: Dagster's lines, without stack traces unless asked for.

A user error (a bad task file, say) already fails with a message that names the file, the
field and the fix; printed under two copies of Dagster's stack trace it is hard to find.
The traceback stays in the run's event log (the UI shows it) and comes back on the console
with ``synth run --traceback`` (logger config ``traceback: true``).
"""

import logging
import sys

import dagster as dg

_CUTS = ("\n\nStack Trace:", "\nStack Trace:", "\nTraceback (most recent call last)", "\n\nThe above exception")


class ConciseFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = super().format(record)
        for cut in _CUTS:
            if cut in msg:
                msg = msg.split(cut, 1)[0].rstrip() + "  [stack trace: in the run's logs, or synth run --traceback]"
        return msg


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "traceback": dg.Field(bool, is_required=False, default_value=False),
    },
    description="Console lines of the run; stack traces only with traceback: true.",
)
def console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    cfg = init_context.logger_config
    logger = logging.Logger("synth_platform", level=cfg["log_level"].upper())
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s - %(levelname)s - %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if cfg["traceback"] else ConciseFormatter(fmt))
    logger.addHandler(handler)
    return logger
