"""The benchmark runner end to end (library level): outputs, resume, determinism, shards, bad inputs."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from harness.images import ImageError
from harness.errors import RunError
from harness.run import RunConfig, execute_run, resolve_pairs
from harness.rundir import merge_shards, write_run_tables
from methods import UnknownMethodError



def config(out, content, style, **kw):
    base = dict(methods=["styA2K", "adain"], out=out, content=[str(content)], style=[str(style)], size=64,
                init="random", timing_repeats=5, timing_warmup=1, progress=False)
    base.update(kw)
    return RunConfig(**base)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_run_writes_images_metrics_manifest_tables(tmp_path, eval_images):
    out = tmp_path / "run"
    summary = execute_run(config(out, *eval_images))
    rows = read_rows(out / "metrics.csv")
    assert summary["computed"] == 8 and len(rows) == 8
    assert {r["method"] for r in rows} == {"styA2K", "adain"} and all(r["untrained"] == "True" for r in rows)
    assert all(float(r["content_loss"]) >= 0 and float(r["lpips"]) >= 0 for r in rows)
    assert sorted(p.name for p in (out / "styA2K").iterdir()) == [
        "content1__style1.png", "content1__style2.png", "content2__style1.png", "content2__style2.png"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 0 and "torch" in manifest["versions"]
    assert set(manifest["images"]["content"]) == {"content1.png", "content2.png"}
    assert all(len(h) == 64 for h in manifest["images"]["style"].values())
    assert "UNTRAINED" in manifest["methods"]["styA2K"]["flag"]
    for kind in ("csv", "md", "tex"):
        assert (out / f"table.{kind}").exists()
    assert "†" in (out / "table.md").read_text()
    timing = read_rows(out / "timing.csv")
    assert [r["method"] for r in timing] == ["styA2K", "adain"] and float(timing[0]["gflops"]) > 0


def test_resume_recomputes_nothing_and_same_inputs_give_same_numbers(tmp_path, eval_images):
    out = tmp_path / "run"
    execute_run(config(out, *eval_images, metrics=["content_loss", "style_loss", "lpips"]))
    first = (out / "metrics.csv").read_text()
    again = execute_run(config(out, *eval_images, metrics=["content_loss", "style_loss", "lpips"]))
    assert again["computed"] == 0 and again["skipped"] == 8
    # A killed run: drop the last two rows and half-write a third line; the rerun fills exactly those.
    lines = first.splitlines(keepends=True)
    (out / "metrics.csv").write_text("".join(lines[:-2]) + lines[-2][:10])
    resumed = execute_run(config(out, *eval_images, metrics=["content_loss", "style_loss", "lpips"]))
    assert resumed["computed"] == 2
    assert sorted((out / "metrics.csv").read_text().splitlines()) == sorted(first.splitlines())
    fresh = tmp_path / "fresh"
    execute_run(config(fresh, *eval_images, metrics=["content_loss", "style_loss", "lpips"]))
    assert (fresh / "metrics.csv").read_text() == first
    forced = execute_run(config(out, *eval_images, metrics=["content_loss"], force=True))
    assert forced["computed"] == 8


def test_shards_merge_to_the_full_run(tmp_path, eval_images):
    out = tmp_path / "sharded"
    for i in range(3):
        execute_run(config(out, *eval_images, methods=["adain"], metrics=["style_loss"], shard=(i, 3)))
    assert not (out / "metrics.csv").exists()
    with pytest.raises(RunError, match="merge_shards"):
        write_run_tables([out])
    assert merge_shards(out)["metrics"] == 4
    full = tmp_path / "full"
    execute_run(config(full, *eval_images, methods=["adain"], metrics=["style_loss"]))
    key = lambda r: (r["method"], r["content"], r["style"])  # noqa: E731
    assert sorted(read_rows(out / "metrics.csv"), key=key) == sorted(read_rows(full / "metrics.csv"), key=key)
    assert write_run_tables([out])["md"].exists()


def test_pair_sampling_is_seeded_and_sharding_partitions(tmp_path, eval_images):
    all_pairs = resolve_pairs(config(tmp_path, *eval_images))[2]
    a = resolve_pairs(config(tmp_path, *eval_images, pairs=3, seed=1))[2]
    b = resolve_pairs(config(tmp_path, *eval_images, pairs=3, seed=1))[2]
    assert a == b and len(a) == 3 and set(a) <= set(all_pairs)
    shards = [resolve_pairs(config(tmp_path, *eval_images, shard=(i, 3)))[2] for i in range(3)]
    key = lambda p: (p.content, p.style)  # noqa: E731
    assert sorted((p for s in shards for p in s), key=key) == sorted(all_pairs, key=key)


def test_demo_set_is_the_default(tmp_path):
    contents, styles, pairs = resolve_pairs(RunConfig(methods=["adain"], out=tmp_path))
    assert [p.stem for p in contents] == ["astronaut", "chelsea", "coffee", "rocket"]
    assert [p.stem for p in styles] == ["dots", "mosaic", "strokes", "waves"] and len(pairs) == 16


def test_bad_inputs_fail_before_any_work(tmp_path, eval_images):
    content, style = eval_images
    out = tmp_path / "run"
    with pytest.raises(ImageError, match="no such file"):
        execute_run(config(out, tmp_path / "nope", style))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images found"):
        execute_run(config(out, tmp_path / "empty", style))
    with pytest.raises(UnknownMethodError, match="did you mean"):
        execute_run(config(out, content, style, methods=["styA2k-nod"]))
    with pytest.raises(RunError, match="unknown metric.*kid"):
        execute_run(config(out, content, style, metrics=["kid"]))
    (content / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageError, match="broken.png"):
        execute_run(config(out, content, style))
    assert not (out / "metrics.csv").exists()


def test_cached_inputs_give_the_metric_objects_values(tmp_path):
    """The runner caches content features and style statistics per image; values equal the plain metric objects."""
    import torch

    from methods import Loading
    from metrics.collection import build_metrics
    from metrics.content_style import ContentStyleLoss

    from metrics.perceptual import lpips_distance

    suite = build_metrics(["content_loss", "style_loss", "lpips"], Loading(init="random"))
    reference = ContentStyleLoss(suite.content_style.cache.encoder)
    content_passes, passes = [], []
    suite.lpips.model.net.register_forward_hook(lambda module, args, out: content_passes.append(args[0].shape[0]))
    torch.manual_seed(0)
    content, style = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    for _ in range(2):  # the second round reads the caches
        output = torch.rand(2, 3, 48, 48)
        content_passes.clear()
        got = suite.update(output, content, style, [("c1", "s1"), ("c2", "s2")])
        passes.append(content_passes.copy())
        expected = reference.update(output, content, style)
        expected["lpips"] = lpips_distance(output, content, suite.lpips.model)
        for name in ("content_loss", "style_loss", "lpips"):
            assert got[name] == pytest.approx(expected[name].tolist(), rel=1e-5)  # batch 1 vs 2: other conv kernels
    assert passes == [[1, 1, 2], [2]]  # LPIPS backbone: each content once, then only the outputs (batch 2)


def test_metric_cache_is_bounded_and_gives_the_same_values():
    """The metrics' per-image cache stays within its budget (least recently used dropped, dropped sides computed
    again) and every budget — none, one content's worth, plenty — gives the same values."""
    import torch

    from methods import Loading
    from methods.cache import BoundedLRU, tensor_bytes
    from metrics.collection import build_metrics
    from metrics.perceptual import lpips_features

    torch.manual_seed(0)
    contents = {f"c{i}": torch.rand(1, 3, 48, 48) for i in range(3)}
    styles = {f"s{i}": torch.rand(1, 3, 40, 56) for i in range(2)}
    outputs = {(c, s): torch.rand(1, 3, 48, 48) for c in contents for s in styles}
    suite = build_metrics(["content_loss", "style_loss", "lpips"], Loading(init="random"))
    layers = suite.content_style.settings.content_layers
    one_content = (tensor_bytes(suite.content_style.cache.encoder(contents["c0"], layers))
                   + tensor_bytes(lpips_features(contents["c0"], suite.lpips.model)))
    results = {}
    for budget in (0, one_content * 1.5 / 2**20, 1024):
        suite.cache = BoundedLRU(budget)
        rows = [suite.update(outputs[(c, s)], contents[c], styles[s], [(c, s)]) for c in contents for s in styles]
        assert suite.cache.used <= suite.cache.budget
        results[budget] = (rows, suite.cache.stats())
    rows_0, stats_0 = results[0]
    assert stats_0["hits"] == 0 and stats_0["used_mib"] == 0
    for budget, (rows, stats) in results.items():
        assert rows == rows_0, budget  # bit-identical values: the same kernels on the same inputs
    assert results[1024][1]["misses"] == 3 * 2 + 2  # content features + LPIPS side per content, statistics per style
    small = results[one_content * 1.5 / 2**20][1]
    assert results[1024][1]["misses"] < small["misses"] < stats_0["misses"]


def test_encoding_reuse_is_bit_identical_to_per_pair_encoding(tmp_path):
    """The encoding cache (each method encodes each content and style once) gives the same images and the same
    metrics.csv as encoding both images for every pair; a budget too small for one entry degrades to per pair."""
    from harness.run import RunConfig, execute_run

    runs = {}
    for label, budget in (("reuse", 1024), ("per_pair", 0), ("tiny", 0.01)):
        config = RunConfig(methods=["styA2K", "adain", "all2all", "AdaAttN", "MicroAST"], size=64, init="random", out=tmp_path / label,
                           metrics=["content_loss", "style_loss", "lpips"], progress=False, report=False,
                           feature_cache_mib=budget)
        runs[label] = execute_run(config)
    reuse = runs["reuse"]["encodings"]
    assert reuse["shared_vgg"] == ["adain", "all2all", "styA2K"]  # one VGG-19 (same seeded init): encoded once for all
    # 4 demo contents + 4 styles: 8 VGG encodings shared by styA2K, adain and all2all, 8 each for AdaAttN and
    # MicroAST, and the attention's style state of each style for styA2K and all2all; 16 pairs look up a content
    # and a style for 5 methods, and a style state for 2
    assert reuse["misses"] == 8 * 3 + 4 * 2 and reuse["hits"] == 16 * (5 * 2 + 2) - 32
    assert runs["per_pair"]["encodings"]["hits"] == 0 and runs["tiny"]["encodings"]["hits"] == 0
    reference = (tmp_path / "per_pair" / "metrics.csv").read_text()
    for label in ("reuse", "tiny"):
        assert (tmp_path / label / "metrics.csv").read_text() == reference
        for image in sorted((tmp_path / "per_pair").glob("*/*.png")):
            other = tmp_path / label / image.parent.name / image.name
            assert np.array_equal(np.asarray(Image.open(image)), np.asarray(Image.open(other))), other


def test_encoding_cache_evicts_least_recently_used():
    from harness.encodings import EncodingCache
    from methods import PreparedFeatures

    def prepared(mib):
        return PreparedFeatures({"x": torch.zeros(int(mib * 2**20 / 4))}, (1, 1), "test")

    cache, made = EncodingCache(3), []
    make = lambda key, mib: lambda: made.append(key) or prepared(mib)  # noqa: E731
    for key in ("a", "b", "a", "c", "b", "d"):
        cache.get(key, make(key, 1))
    assert made == ["a", "b", "c", "d"] and len(cache) == 3
    cache.get("a", make("a", 1))  # when "d" came, "a" was the least recently used (c and b were used after it)
    assert made[-1] == "a" and cache.stats()["hits"] == 2
    cache.get("big", make("big", 4))
    assert "big" not in [k for k in cache._entries] and cache.used <= cache.budget


def test_encoding_cache_keeps_derived_entries_only_in_free_room():
    """Style states (derived entries) never evict anything and are evicted before encodings: a cycle of styles
    longer than the cache keeps the encodings' hits."""
    from harness.encodings import EncodingCache
    from methods import PreparedFeatures

    def prepared(mib):
        return PreparedFeatures({"x": torch.zeros(int(mib * 2**20 / 4))}, (1, 1), "test")

    cache, made = EncodingCache(4), []
    make = lambda key, mib: lambda: made.append(key) or prepared(mib)  # noqa: E731
    cache.get("a", make("a", 1))
    cache.get("a state", make("a state", 1), derived=True)
    cache.get("b", make("b", 1))
    cache.get("b state", make("b state", 1), derived=True)  # the cache is full now
    cache.get("c state", make("c state", 1), derived=True)  # no room: used, not kept, nothing evicted
    assert len(cache) == 4 and cache.used == 4 * 2**20
    cache.get("c", make("c", 1))  # an encoding evicts the least recently used state ("a state"), not "a"
    cache.get("a", make("a", 1))
    assert made == ["a", "a state", "b", "b state", "c state", "c"] and cache.stats()["hits"] == 1
    cache.get("a state", make("a state", 1), derived=True)  # made again, and not kept: the cache is full
    assert made[-1] == "a state" and "a state" not in cache._derived
    cache.get("d", make("d", 2))  # evicts the remaining state, then the least recently used encoding "b"
    assert made[-1] == "d" and cache.used == 4 * 2**20 and set(cache._entries) == {"a", "c", "d"}
    cache.get("b", make("b", 1))
    assert made[-1] == "b"


def test_channels_last_run_is_recorded_and_close_to_the_default(tmp_path):
    import json

    from harness.run import RunConfig, execute_run

    rows = {}
    for label, channels_last in (("default", False), ("nhwc", True)):
        config = RunConfig(methods=["styA2K", "adain"], size=64, init="random", out=tmp_path / label,
                           metrics=["content_loss", "style_loss"], progress=False, report=False,
                           channels_last=channels_last)
        execute_run(config)
        manifest = json.loads((tmp_path / label / "manifest.json").read_text())
        assert manifest["identity"].get("channels_last") is (True if channels_last else None)
        rows[label] = (tmp_path / label / "metrics.csv").read_text().splitlines()
    assert len(rows["default"]) == len(rows["nhwc"]) == 1 + 2 * 16
    for a, b in zip(rows["default"][1:], rows["nhwc"][1:]):
        *keys_a, content_a, style_a = a.split(",")
        *keys_b, content_b, style_b = b.split(",")
        assert keys_a == keys_b  # same method, content, style, untrained flag
        assert float(content_a) == pytest.approx(float(content_b), rel=1e-2)
        assert float(style_a) == pytest.approx(float(style_b), rel=1e-2)
