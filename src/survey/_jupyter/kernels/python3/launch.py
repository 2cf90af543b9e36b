"""Kernel launcher of the dashboard server (``survey dashboard``; kernel.json beside this file runs
it; the server puts this folder first on JUPYTER_PATH, so it replaces the ``python3`` kernel for
the dashboards only).

An IPython kernel with limits, all set from the environment the server gives its kernels:

- ``SURVEY_KERNEL_MEMORY_MB``: address-space limit (RLIMIT_AS) of the kernel process; an
  allocation beyond it raises MemoryError in the kernel instead of growing it;
- ``SURVEY_KERNEL_MAX_COMMS``: comms the browser may open in the kernel (ipywidgets opens one or
  two per page); further ``comm_open`` messages are dropped with a line in the server log;
- errors (widget callbacks, comm handlers, warnings, logging) go to the server log with their
  traceback; the browser gets one generic line, never a traceback, a file path or the message.

Self-contained (standard library and ipykernel only): it does not import the workbench.
"""

import logging
import os
import resource
import sys
import traceback

ENV_MEMORY = "SURVEY_KERNEL_MEMORY_MB"
ENV_COMMS = "SURVEY_KERNEL_MAX_COMMS"
ERROR_TEXT = "An error occurred in the dashboard. The details are in the server log."


def _int_env(name):
    try:
        return max(int(os.environ.pop(name, "0") or 0), 0)
    except ValueError:
        return 0


def limit_comms(manager_class, max_comms, log):
    """Drop browser ``comm_open`` messages once the browser has ``max_comms`` comms open."""
    comm_open = manager_class.comm_open

    def limited_comm_open(self, stream, ident, msg):
        opened = getattr(self, "_survey_client_comms", None)
        if opened is None:
            opened = self._survey_client_comms = set()
        opened &= set(self.comms)  # closed ones no longer count
        if len(opened) >= max_comms:
            log.warning("comm_open refused: the browser already has %d comms open in this kernel (limit %d)",
                        len(opened), max_comms)
            return None
        out = comm_open(self, stream, ident, msg)
        comm_id = (msg.get("content") or {}).get("comm_id")
        if comm_id in self.comms:
            opened.add(comm_id)
        return out

    manager_class.comm_open = limited_comm_open


def main(argv):
    mb = _int_env(ENV_MEMORY)
    if mb:
        resource.setrlimit(resource.RLIMIT_AS, (mb << 20, mb << 20))
    max_comms = _int_env(ENV_COMMS)
    # logging and warnings to this process's stderr (the server log), not to the browser
    logging.basicConfig(stream=sys.__stderr__, level=logging.WARNING,
                        format=f"[kernel {os.getpid()}] %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    log = logging.getLogger("survey.kernel")

    import ipykernel.ipkernel
    from ipykernel.kernelapp import IPKernelApp

    if max_comms:
        limit_comms(ipykernel.ipkernel.CommManager, max_comms, log)
    app = IPKernelApp.instance()
    app.capture_fd_output = False  # what is written to file descriptor 2 stays in the server log
    app.initialize(argv)
    shell = app.shell

    def showtraceback(exc_tuple=None, *args, **kwargs):
        etype, value, tb = sys.exc_info() if exc_tuple is None else exc_tuple
        if etype is None:
            return
        log.error("error in a dashboard kernel:\n%s", "".join(traceback.format_exception(etype, value, tb)).rstrip())
        shell._showtraceback(Exception, ERROR_TEXT, [ERROR_TEXT])

    shell.showtraceback = showtraceback
    shell.showsyntaxerror = lambda *args, **kwargs: showtraceback()
    app.start()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
