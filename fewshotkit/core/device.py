"""Choosing the compute device: the same code runs on CUDA when there is one, else the CPU."""

from __future__ import annotations

from fewshotkit.core.errors import FewshotkitError


def resolve_device(name: str = "auto"):
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FewshotkitError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise FewshotkitError(f"--device: '{name}' is not a device (use auto, cpu, cuda or cuda:N)") from exc


def cpu_bf16_supported() -> bool:
    """Whether this CPU has native bfloat16 matrix instructions (AVX512-BF16 or AMX), the only case
    where CPU autocast to bfloat16 is faster than float32."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN's query
        return False


def describe_cpu() -> str:
    """The CPU's model name and whether it has bfloat16 units, e.g. ``"AMD EPYC 7B13, no bfloat16
    units"``: float32 sums, and so trained weights, differ between CPUs, and so does the speed."""
    import platform

    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            name = next((line.partition(":")[2].strip() for line in info if line.startswith("model name")), "")
    except OSError:  # not Linux
        pass
    name = name or platform.processor() or platform.machine() or "an unnamed CPU"
    return f"{name}, {'bfloat16 units' if cpu_bf16_supported() else 'no bfloat16 units'}"


def numpy_dispatch() -> dict[str, bool]:
    """numpy's SIMD dispatch targets in its order, each with whether it is in use on this CPU (``{}``
    where numpy does not say). ``NPY_DISABLE_CPU_FEATURES``, read when numpy is imported, turns
    targets off."""
    import importlib

    for name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, numpy 1
        try:
            umath = importlib.import_module(name)
            return {t: bool(umath.__cpu_features__.get(t)) for t in umath.__cpu_dispatch__}
        except (ImportError, AttributeError):
            continue
    return {}


def numpy_simd() -> str:
    """The SIMD targets numpy dispatches to on this CPU, e.g. ``"X86_V3 X86_V4 AVX512_ICL"`` (``"baseline"``
    when none, ``"unknown"`` where numpy does not say): its default sort orders equal keys differently
    on each, so what sorts ties, such as Felzenszwalb's edge queue, can give other results on another CPU."""
    targets = numpy_dispatch()
    return " ".join(t for t, used in targets.items() if used) or ("baseline" if targets else "unknown")


def describe_device() -> str:
    """'cuda: <name>' or 'cpu', for the env command and result files."""
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return "cpu"
