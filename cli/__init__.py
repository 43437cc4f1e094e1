"""The ``augment`` command line: parses arguments, calls the library, prints results.

Errors the user can fix (bad paths, corrupt files, bad values) print one ``Error: ...`` line
and exit 1; usage errors (an option out of range, an unknown option or command) print one
``Error: ...`` line too, and exit 2. Commands import torch only when they run.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings

import click

from augment.errors import AugmentError, one_line

# shown as they are: ours, and click >= 8.2's "no arguments, so here is the help"
_SHOWN_AS_THEY_ARE = (getattr(click.exceptions, "NoArgsIsHelpError", None),)
_SHOWN_AS_THEY_ARE = tuple(e for e in _SHOWN_AS_THEY_ARE if e is not None)


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line (click prints usage, a hint and the error: 4 lines)."""

    def show(self, file=None) -> None:
        where = f" (see '{self.ctx.command_path} -h')" if self.ctx is not None else ""
        click.echo(f"Error: {self.format_message()}{where}", file=file, err=file is None)


class AugmentGroup(click.Group):
    """A click group that turns library errors into one line and exit status 1, and usage
    errors into one line and exit status 2."""

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:  # the group's own options
            return super().make_context(info_name, args, parent=parent, **extra)
        except (OneLineUsageError, *_SHOWN_AS_THEY_ARE):
            raise
        except click.UsageError as e:
            raise OneLineUsageError(e.format_message(), e.ctx) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (OneLineUsageError, *_SHOWN_AS_THEY_ARE):
            raise
        except click.UsageError as e:  # a command's options, an unknown command
            raise OneLineUsageError(e.format_message(), e.ctx) from None
        except AugmentError as e:
            raise click.ClickException(one_line(e)) from None
        except OSError as e:  # disk full, permission denied, ...: no traceback for these
            where = f": {e.filename}" if getattr(e, "filename", None) else ""
            raise click.ClickException(f"{e.strerror or e}{where}") from None


@click.group(cls=AugmentGroup,
             context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="augment", prog_name="augment")
def main() -> None:
    """Train a conditional WGAN-GP on MNIST and use it as a data-augmentation source."""
    # SIGTERM (kill, a job scheduler) unwinds like Ctrl-C, so the library's cleanups run: no
    # half-written output or temp directory is left behind; a single-process training run
    # stops after its step. Not under torchrun, whose workers must die on its SIGTERM (a rank
    # unwinding inside a collective would wait for the others), and undone when the command ends.
    under_torchrun = "TORCHELASTIC_RUN_ID" in os.environ or os.environ.get("WORLD_SIZE", "1") != "1"
    if threading.current_thread() is threading.main_thread() and not under_torchrun and \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        if previous is not None:
            click.get_current_context().call_on_close(lambda: signal.signal(signal.SIGTERM, previous))

    # library warnings (e.g. "torch.compile is unavailable here") as one line, not file:line + source
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"Warning: {message}\n"


from . import data as _data  # noqa: E402  (commands import augment lazily, beyond config/errors)
from . import dump as _dump  # noqa: E402
from . import evaluate as _evaluate  # noqa: E402
from . import experiment as _experiment  # noqa: E402
from . import sample as _sample  # noqa: E402
from . import train as _train  # noqa: E402

main.add_command(_train.train)
main.add_command(_sample.sample)
main.add_command(_sample.export)
main.add_command(_dump.dump)
main.add_command(_evaluate.evaluate)
main.add_command(_evaluate.train_classifier)
main.add_command(_experiment.experiment)
main.add_command(_data.data)
