"""What a number was measured on: the CPU model and core count."""
import os
import platform


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            model = next(ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return model


def machine_name() -> str:
    """CPU model and core count, e.g. ``Intel Xeon ..., 2 cores`` (stated with timings)."""
    return f'{cpu_model()}, {os.cpu_count()} cores'
