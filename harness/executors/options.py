"""``--executor`` and its resources: flags beat the environment, which beats the config file, as for every setting.

Environment: ``HARNESS_EXECUTOR`` (local|processes|ray), ``HARNESS_RAY_ADDRESS``, ``HARNESS_CPUS_PER_JOB``,
``HARNESS_GPUS_PER_JOB``, ``HARNESS_SPLIT_HEADS`` (1/0); config-file keys ``executor``, ``ray_address``,
``cpus_per_job``, ``gpus_per_job``, ``split_heads``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from harness.errors import HarnessError
from harness.executors.base import Executor
from harness.executors.local import LocalExecutor
from harness.settings import Settings

#: config-file key → environment variable
KEYS = {"executor": "HARNESS_EXECUTOR", "ray_address": "HARNESS_RAY_ADDRESS", "cpus_per_job": "HARNESS_CPUS_PER_JOB",
        "gpus_per_job": "HARNESS_GPUS_PER_JOB", "split_heads": "HARNESS_SPLIT_HEADS"}


@dataclass(frozen=True)
class ExecutorOptions:
    executor: str = "local"
    address: str | None = None
    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0
    split_heads: bool = False
    #: an explicit --batch-size was given (then GPU workers do not fit it to their memory)
    batch_size_given: bool = False


def _number(value: str, where: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise HarnessError(f"{where}: expected a number, not {value!r}") from None
    if x < 0:
        raise HarnessError(f"{where}: must be ≥ 0, not {value!r}")
    return x


def _flag(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise HarnessError(f"{where}: expected true or false, not {value!r}")


def resolve(settings: Settings, executor: str | None = None, address: str | None = None,
            cpus_per_job: float | None = None, gpus_per_job: float | None = None, split_heads: bool | None = None,
            batch_size_given: bool = False) -> ExecutorOptions:
    """Each option from its flag, else its environment variable, else the config file (``settings.extra``)."""

    def pick(key: str, flag: object) -> tuple[str | None, str]:
        if flag is not None:
            return str(flag), f"--{key.replace('_', '-')}"
        env = os.environ.get(KEYS[key])
        if env is not None:
            return env, KEYS[key]
        return settings.extra.get(key), f"config file key {key!r}"

    d = ExecutorOptions()
    name, _ = pick("executor", executor)
    addr, _ = pick("ray_address", address)
    cpus, cpus_at = pick("cpus_per_job", cpus_per_job)
    gpus, gpus_at = pick("gpus_per_job", gpus_per_job)
    split, split_at = pick("split_heads", split_heads)
    opts = ExecutorOptions(
        executor=name or d.executor,
        address=addr or None,
        cpus_per_job=_number(cpus, cpus_at) if cpus is not None else d.cpus_per_job,
        gpus_per_job=_number(gpus, gpus_at) if gpus is not None else d.gpus_per_job,
        split_heads=_flag(split, split_at) if split is not None else d.split_heads,
        batch_size_given=batch_size_given,
    )
    if opts.executor not in EXECUTORS:
        raise HarnessError(f"executor must be one of {', '.join(sorted(EXECUTORS))}, not {opts.executor!r}")
    if opts.cpus_per_job <= 0:
        raise HarnessError(f"{cpus_at}: a job needs more than 0 CPUs")
    return opts


def _local(o: ExecutorOptions) -> Executor:
    return LocalExecutor(split_heads=o.split_heads)


def _ray(o: ExecutorOptions) -> Executor:
    from harness.executors.ray_cluster import RayExecutor

    return RayExecutor(address=o.address, cpus_per_job=o.cpus_per_job, gpus_per_job=o.gpus_per_job,
                       split_heads=o.split_heads, fit_batch=not o.batch_size_given)


def _processes(o: ExecutorOptions) -> Executor:
    from harness.executors.processes import ProcessExecutor

    return ProcessExecutor(threads=max(1, int(o.cpus_per_job)))


#: ``--executor`` value → constructor (Ray is imported only when chosen)
EXECUTORS: dict[str, Callable[[ExecutorOptions], Executor]] = {"local": _local, "ray": _ray, "processes": _processes}


def make_executor(o: ExecutorOptions) -> Executor:
    return EXECUTORS[o.executor](o)


def device_for(o: ExecutorOptions, device: str) -> str:
    """The device jobs will run on. Locally this process decides; on Ray the workers do, so ``auto`` means
    CUDA exactly when jobs request GPUs, whatever the driver has (it plans the job ids, which depend on it)."""
    from harness.extract import resolve_device

    if o.executor in ("local", "processes"):
        return resolve_device(device)
    if device == "auto":
        return "cuda" if o.gpus_per_job > 0 else "cpu"
    if device.startswith("cuda") and o.gpus_per_job <= 0:
        raise HarnessError("--device cuda on Ray needs --gpus-per-job > 0 (a task sees only the GPUs it requests)")
    return device
