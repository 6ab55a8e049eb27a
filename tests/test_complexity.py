"""Complexity study (harness.complexity): Eq. 15 against the spec's table, the FLOP counter against hand counts,
a tiny fresh-process sweep (csv, slopes, tables, plots), OOM / timeout recording, resuming, bad input.

The sweeps run real worker processes at 64–256 px with one thread and one repeat, so they stay fast on a shared
2-core CPU; nothing asserts a duration.
"""
from __future__ import annotations

import json
import math

import matplotlib
import pandas as pd
import pytest
import torch

matplotlib.use("Agg")

from harness import complexity as cx  # noqa: E402
from harness.complexity import (  # noqa: E402
    ComplexityConfig,
    ComplexityError,
    count_attention_flops,
    eq15_attention_flops,
    fit_slopes,
    plot_complexity,
    ratio_table,
    run_complexity,
    time_modules,
)
from harness.errors import EXPECTED_ERRORS  # noqa: E402
from methods import OptionError, UnknownMethodError, create_method  # noqa: E402

FAST = dict(repeats=1, warmup=0, attention_repeats=1, threads=1, progress=False, seed=0)


# --------------------------------------------------------------------------------------------------- Eq. 15 arithmetic
def test_eq15_reproduces_the_spec_table():
    """Spec §7.1 per-layer table (MACs): Ω = (5 + 2n + r)·HWC and all-to-all (HW)²C."""
    at512 = eq15_attention_flops("styA2K", 512)
    at256 = eq15_attention_flops("styA2K", 256)
    # (layer, n, r, Ω hand = (5+2n+r)·H·W·C, spec Ω, spec all-to-all, spec ratio)
    expected = [
        (at512["relu3_1"], 256, 64, 581 * 128 * 128 * 256, 2.44e9, 6.87e10, 28),
        (at512["relu4_1"], 64, 64, 197 * 64 * 64 * 512, 4.13e8, 8.59e9, 21),
        (at512["relu5_1"], 64, 16, 149 * 32 * 32 * 512, 7.8e7, 5.37e8, 7),
        (at256["relu3_1"], 64, 64, 197 * 64 * 64 * 256, 2.07e8, 4.29e9, 21),
    ]
    for layer, n, r, omega, spec_omega, spec_all, spec_ratio in expected:
        assert (layer.n, layer.r) == (n, r)
        assert layer.macs == omega == layer.D1 + layer.D2 + layer.P1 + layer.P2
        assert layer.macs == pytest.approx(spec_omega, rel=6e-3)  # the spec rounds to 3 significant digits
        assert layer.all2all_macs == pytest.approx(spec_all, rel=6e-3)
        assert round(layer.ratio) == spec_ratio
    r31 = at512["relu3_1"]
    hwc = 128 * 128 * 256
    assert (r31.D1, r31.D2, r31.P1, r31.P2) == (5 * hwc, 256 * hwc, 256 * hwc, 64 * hwc)
    assert r31.all2all_macs == (128 * 128) ** 2 * 256 == 68_719_476_736


def test_eq15_follows_the_ablations():
    hwc = 128 * 128 * 256  # relu3_1 at 512: n = 256, r = 64
    assert eq15_attention_flops("styA2K-noDA", 512)["relu3_1"].macs == (256 + 64) * hwc
    assert eq15_attention_flops("styA2K-noPA", 512)["relu3_1"].macs == (5 + 256) * hwc
    assert eq15_attention_flops("styA2K-noPA1", 512)["relu3_1"].macs == (5 + 256 + 64) * hwc
    assert eq15_attention_flops("styA2K-1head", 512)["relu3_1"].macs == 581 * hwc  # heads do not change a count
    a2a = eq15_attention_flops("all2all", 512)["relu4_1"]
    assert a2a.macs == a2a.all2all_macs == 4096**2 * 512 and a2a.ratio == 1.0
    assert eq15_attention_flops("adain", 512) == {}
    # a method option changes the arithmetic: block side 16 at relu3_1 → n = 64 blocks of r = 256 points
    wide = eq15_attention_flops("styA2K", 512, {"block_sides": [16, 8, 4]})["relu3_1"]
    assert (wide.n, wide.r, wide.macs) == (64, 256, (5 + 128 + 256) * hwc)


# --------------------------------------------------------------------------------------------------- FLOP counter
@pytest.fixture
def one_thread():
    """One intra-op thread for an in-process forward (quicker on a shared CPU); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _counted(name: str, size: int) -> dict[str, float]:
    method = create_method(name, init="random")
    x = torch.rand(1, 3, size, size)
    modules = cx.attention_modules(method.model)

    def forward():
        with torch.inference_mode():
            method.model(x, x)

    return count_attention_flops(forward, method.model, modules)


def test_flop_counter_matches_a_hand_count_of_the_attention_matmuls(one_thread):
    # all2all at 64²: relu3_1 16×16 = 256 tokens, C = 256; relu4_1 64 tokens, C = 512; relu5_1 16 tokens, C = 512.
    # Per layer QKᵀ and A·V: 2·(HW)²·C MACs, ×2 FLOPs per MAC.
    core = 2 * (2 * 256**2 * 256 + 2 * 64**2 * 512 + 2 * 16**2 * 512)
    assert core == 76_021_760
    # 1×1 convs q, k, v, fusion1: 4 · HW·C² MACs per layer.
    convs = 2 * 4 * (256 * 256**2 + 64 * 512**2 + 16 * 512**2)
    flops = _counted("all2all", 64)
    assert flops["attention_core"] == core
    assert flops["attention"] == core + convs
    assert flops["total"] > flops["attention"]
    # styA2K at 64²: relu3_1 n = 4 blocks of r = 64, C = 256 → HWC = 65,536; relu4_1 n = 1, r = 64, HWC = 32,768;
    # relu5_1 n = 1, r = 16, HWC = 8,192; h = 8 heads. Matmul MACs = HWC·(3h + 3n + 2r) + 5·n·C²: DA step 1's three
    # weighted sums per head (3h) and its projections of block means and sums (5nC²), DA QKᵀ + A·V (2n), PA block
    # matching (n), PA QKᵀ + A·V (2r).
    a2k_core = 2 * (65_536 * (24 + 12 + 128) + 5 * 4 * 256**2 + 32_768 * (24 + 3 + 128) + 5 * 512**2
                    + 8_192 * (24 + 3 + 32) + 5 * 512**2)
    assert a2k_core == 40_484_864
    assert _counted("styA2K", 64)["attention_core"] == a2k_core
    assert sum(v.impl_macs for v in eq15_attention_flops("styA2K", 64).values()) * 2 == a2k_core


# --------------------------------------------------------------------------------------------------- helpers
def test_time_modules_with_a_counting_clock():
    """A clock that advances by 1 per reading: start 0, A pre 1, A post 2, B pre 3, B post 4, end 5."""
    a, b = torch.nn.Identity(), torch.nn.Identity()
    model = torch.nn.Sequential(a, b)
    ticks = iter(range(100))
    times = time_modules(lambda: model(torch.zeros(1)), {"a": a, "b": b}, repeats=2, warmup=1,
                         clock=lambda: float(next(ticks)))
    assert times.module_ms == {"a": 1000.0, "b": 1000.0}
    assert times.total_ms == 5000.0 and times.inside_ms == 2000.0 and times.share == pytest.approx(0.4)
    assert times.runs == 2


def test_is_oom_classification():
    assert cx.is_oom(MemoryError())
    assert cx.is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory"))
    assert cx.is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not cx.is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not cx.is_oom(ValueError("out of memory"))  # only RuntimeErrors are read


def _frame(rows):
    base = {"dtype": "fp32", "device": "cpu", "status": "ok"}
    df = pd.DataFrame([{**base, **r} for r in rows])
    df["pixels"] = df["size"] ** 2
    return df


def test_fit_slopes_against_exact_power_laws():
    rows = [{"method": "m", "size": s, "latency_ms": 3.0 * (s * s) ** 1.5, "peak_memory_mib": 0.5 * s * s}
            for s in (64, 128, 256)]
    rows += [{"method": "m", "size": 512, "latency_ms": 1.0, "peak_memory_mib": 1.0, "status": "oom"},
             {"method": "lonely", "size": 64, "latency_ms": 5.0, "peak_memory_mib": 0.0}]
    slopes = fit_slopes(_frame(rows)).set_index(["method", "quantity"])
    assert slopes.loc[("m", "latency_ms"), "slope"] == pytest.approx(1.5)
    assert slopes.loc[("m", "latency_ms"), "intercept"] == pytest.approx(math.log(3.0))
    assert slopes.loc[("m", "peak_memory_mib"), "slope"] == pytest.approx(1.0)
    assert slopes.loc[("m", "latency_ms"), "sizes"] == "64;128;256"  # the oom row is not fitted
    assert "lonely" not in slopes.index.get_level_values(0)  # one point: no fit
    above = fit_slopes(_frame(rows), min_size=128).set_index(["method", "quantity"])
    assert above.loc[("m", "latency_ms"), "n_points"] == 2 and above.loc[("m", "latency_ms"), "sizes"] == "128;256"


def test_ratio_table_by_hand():
    rows = [{"method": "all2all", "size": 256, "latency_ms": 30.0, "peak_memory_mib": 40.0},
            {"method": "styA2K", "size": 256, "latency_ms": 10.0, "peak_memory_mib": 20.0},
            {"method": "all2all", "size": 512, "latency_ms": 1.0, "peak_memory_mib": 1.0, "status": "oom"},
            {"method": "styA2K", "size": 512, "latency_ms": 50.0, "peak_memory_mib": 60.0}]
    ratios = ratio_table(_frame(rows)).set_index("size")
    assert ratios.loc[256, "time_ratio"] == 3.0 and ratios.loc[256, "memory_ratio"] == 2.0
    assert math.isnan(ratios.loc[512, "time_ratio"]) and ratios.loc[512, "status_num"] == "oom"


def test_plot_marks_oom_and_shows_slopes(tmp_path):
    rows = [{"method": "a", "size": s, "latency_ms": float(s), "peak_memory_mib": float(s)} for s in (64, 128)]
    rows.append({"method": "a", "size": 256, "latency_ms": math.nan, "peak_memory_mib": math.nan, "status": "oom"})
    df = _frame(rows)
    fig = plot_complexity(df, fit_slopes(df), tmp_path / "plot", "time")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "a (slope 0.50)" in texts and "out of memory" in texts
    assert any(line.get_marker() == "x" for line in fig.axes[0].get_lines())
    assert (tmp_path / "plot.png").stat().st_size > 0 and (tmp_path / "plot.pdf").stat().st_size > 0
    with pytest.raises(ValueError, match="quantity"):
        plot_complexity(df, fit_slopes(df), None, "energy")


# --------------------------------------------------------------------------------------------------- sweeps
@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("complexity")
    config = ComplexityConfig(methods=["adain", "styA2K"], sizes=[96, 64], out=out, **FAST)
    return config, run_complexity(config)


def test_tiny_sweep_writes_every_output(tiny_sweep):
    config, df = tiny_sweep
    out = config.out
    for name in ("complexity.csv", "slopes.csv", "eq15.csv", "ratios.csv", "complexity.md", "complexity.tex",
                 "complexity_time.png", "complexity_time.pdf", "complexity_memory.png", "complexity_memory.pdf",
                 "complexity.json"):
        assert (out / name).stat().st_size > 0, name
    csv = pd.read_csv(out / "complexity.csv")
    assert sorted(zip(csv["method"], csv["size"])) == [("adain", 64), ("adain", 96), ("styA2K", 64), ("styA2K", 96)]
    assert (csv["status"] == "ok").all(), csv[["method", "size", "status", "note"]]
    assert (csv["latency_ms"] > 0).all() and (csv["peak_memory_mib"] >= 0).all() and (csv["threads"] == 1).all()
    styles = csv[csv["method"] == "styA2K"].set_index("size")
    # measured attention matmuls = hand count of the implementation (also at 96², where relu4_1 12×12 holds one
    # whole 8×8 block and relu5_1 6×6 one 4×4 block: floor tiling)
    assert styles["gflops_attention_core"].tolist() == pytest.approx(styles["impl_gflops_attention_core"].tolist(),
                                                                     rel=1e-12)
    assert styles.loc[64, "gflops_attention_core"] == pytest.approx(40_484_864 / 1e9)
    # Eq. 15 at 64²: Σ (5 + 2n + r)·HWC = 77·65,536 + 71·32,768 + 23·8,192 = 7,561,216 MACs, ×2 FLOPs
    assert styles.loc[64, "eq15_gflops_attention"] == pytest.approx(2 * 7_561_216 / 1e9)
    assert (styles["gflops_attention"] > styles["gflops_attention_core"]).all()  # the 1×1 convs are inside
    assert ((styles["attention_share"] > 0) & (styles["attention_share"] < 1)).all()
    assert set(json.loads(styles.loc[64, "attention_ms_by_layer"])) == {"relu3_1", "relu4_1", "relu5_1"}
    adain = csv[csv["method"] == "adain"]
    assert (adain["gflops_attention"] == 0).all() and (adain["attention_share"] == 0).all()
    assert (adain["gflops_total"] > 0).all()
    slopes = pd.read_csv(out / "slopes.csv").set_index(["method", "quantity"])
    for method in ("adain", "styA2K"):
        fit = slopes.loc[(method, "latency_ms")]
        rows = csv[csv["method"] == method].set_index("size")
        by_hand = math.log(rows.loc[96, "latency_ms"] / rows.loc[64, "latency_ms"]) / math.log(96**2 / 64**2)
        assert fit["slope"] == pytest.approx(by_hand) and fit["sizes"] == "64;96"
    eq15 = pd.read_csv(out / "eq15.csv")
    assert set(eq15["method"]) == {"styA2K"} and set(eq15["size"]) == {64, 96}
    manifest = json.loads((out / "complexity.json").read_text())
    assert manifest["cells"] == {"computed": 4, "kept": 0, "skipped": 0}
    assert "StyA2K" in (out / "complexity.md").read_text() and "\\toprule" in (out / "complexity.tex").read_text()


def test_resume_skips_done_cells(tiny_sweep, monkeypatch):
    config, first = tiny_sweep

    def no_run(*_args, **_kwargs):
        raise AssertionError("a done cell was run again")

    monkeypatch.setattr(cx.sweep.CellWorker, "run", no_run)
    again = run_complexity(config)
    assert json.loads((config.out / "complexity.json").read_text())["cells"]["kept"] == 4
    assert again.sort_values(["method", "size"])["latency_ms"].tolist() == \
        first.sort_values(["method", "size"])["latency_ms"].tolist()


def test_memory_cap_records_oom_and_the_sweep_goes_on(tmp_path, monkeypatch):
    """adain adds ~1 MiB at 64² (the priming forward already ran at 64²) but needs > 32 MiB at 256²."""
    config = ComplexityConfig(methods=["adain"], sizes=[64, 256, 512], out=tmp_path, max_memory_mib=32, **FAST)
    df = run_complexity(config).set_index("size")
    assert df.loc[64, "status"] == "ok" and df.loc[64, "latency_ms"] > 0
    assert df.loc[256, "status"] == "oom" and "allocate" in df.loc[256, "note"]
    assert df.loc[512, "status"] == "oom" and df.loc[512, "note"].startswith("skipped: a smaller size (256)")
    assert math.isnan(df.loc[256, "latency_ms"])
    calls = []
    monkeypatch.setattr(cx.sweep.CellWorker, "run", lambda *a, **k: calls.append(a) or {"status": "ok"})
    resumed = run_complexity(config).set_index("size")  # 64 and 256 are done; the skipped 512 is re-derived
    assert calls == [] and resumed.loc[512, "status"] == "oom"
    assert json.loads((tmp_path / "complexity.json").read_text())["cells"] == {"computed": 0, "kept": 2, "skipped": 1}


def test_one_worker_per_method_and_a_killed_worker_is_replaced(tmp_path, monkeypatch):
    """worker: method starts one process per method (worker: cell one per cell); a worker killed by a timeout is
    replaced by a fresh one for the next cell. (Its CPU memory column is not asserted: in a reused worker the
    resident-set growth depends on what earlier cells left mapped, which is why ``auto`` keeps fresh workers on the
    CPU.)"""
    starts = []
    original = cx.worker.CellWorker._start
    monkeypatch.setattr(cx.worker.CellWorker, "_start", lambda self: starts.append(1) or original(self))
    config = ComplexityConfig(methods=["adain", "styA2K"], sizes=[64, 96], out=tmp_path, worker="method", **FAST)
    df = run_complexity(config)
    assert (df["status"] == "ok").all() and (df["worker"] == "method").all() and len(starts) == 2
    run_complexity(ComplexityConfig(**{**vars(config), "worker": "auto", "force": True, "methods": ["adain"]}))
    assert len(starts) == 4  # auto on the CPU: a fresh worker per cell
    assert ComplexityConfig(device="cuda").worker_mode == "method"
    cell = lambda size: cx.Cell("adain", size, threads=1, repeats=2, warmup=1, attention_repeats=0,  # noqa: E731
                                count_flops=False)
    with cx.CellWorker(threads=1) as worker:
        results = [worker.run(cell(size)) for size in (128, 384)]
        assert worker.run(cell(128), timeout=0.01)["status"] == "timeout"  # kills the worker ...
        assert worker.run(cell(128))["status"] == "ok"  # ... and the next cell gets a fresh one
    assert len(starts) == 6
    assert [r["status"] for r in results] == ["ok", "ok"]
    assert results[1]["latency_ms"] > 2 * results[0]["latency_ms"]  # 9× the pixels


def test_max_seconds_records_timeout(tmp_path):
    config = ComplexityConfig(methods=["adain"], sizes=[64, 96], out=tmp_path, max_seconds=0.2, **FAST)
    df = run_complexity(config).set_index("size")
    assert df.loc[64, "status"] == "timeout" and df.loc[96, "status"] == "timeout"
    assert df.loc[96, "note"].startswith("skipped")


# --------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("changes, error, match", [
    ({"methods": ["styA2K", "styA2X"]}, UnknownMethodError, "unknown method 'styA2X'"),
    ({"method_options": {"styA2K": {"nope": 1}}}, OptionError, "no option"),
    ({"sizes": [32]}, ComplexityError, "too small"),
    ({"dtype": "fp16"}, ComplexityError, "unknown dtype"),
    ({"repeats": 0}, ComplexityError, "repeats"),
    ({"max_memory_mib": -5}, ComplexityError, "max_memory_mib"),
    ({"device": "tpu"}, ComplexityError, "device"),
    ({"worker": "thread"}, ComplexityError, "worker must be one of auto, method, cell"),
    ({"method_options": {"adain": {}}}, ComplexityError, "not in the sweep"),
])
def test_bad_config_is_one_line_before_any_work(tmp_path, monkeypatch, changes, error, match):
    monkeypatch.setattr(cx.sweep.CellWorker, "run", lambda *a, **k: pytest.fail("work started"))
    config = ComplexityConfig(**{"methods": ["styA2K"], "sizes": [64], "out": tmp_path / "out", **FAST, **changes})
    with pytest.raises(error, match=match) as info:
        run_complexity(config)
    assert isinstance(info.value, EXPECTED_ERRORS)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


_WORKING_SET_PROBE = """
import json, torch
from harness.complexity.measure import _working_set_mib

def forward():
    a = torch.ones(10 * 2**20)  # 40 MiB, every page touched
    b = torch.ones(10 * 2**20)
    del a, b
    c = torch.ones(15 * 2**20)  # 60 MiB
    del c

print(json.dumps([_working_set_mib(forward), _working_set_mib(forward)]))
"""


def test_cpu_working_set_is_the_live_peak_of_one_forward():
    """Two 40 MiB tensors alive together, then freed, then one 60 MiB: the working set is 80 MiB (not 140), the
    same on a second measurement. In a fresh process, as the complexity worker measures (a heap that earlier work
    left full of free blocks serves allocations from them, and those stay resident when freed)."""
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _WORKING_SET_PROBE], capture_output=True, text=True, check=True)
    first, second = json.loads(result.stdout.strip().splitlines()[-1])
    if first is None:
        pytest.skip("needs glibc and /proc/self/clear_refs (Linux)")
    for working_set, baseline in (first, second):
        assert 79 <= working_set <= 84 and baseline > 0
    assert abs(first[0] - second[0]) < 2
