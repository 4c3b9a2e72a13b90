"""Bulk generation (`tgan-sample --out DIR`, tgan_deploy.runtime.bulk): every format, exact resume after a real
kill -9, sharding whose union is the single-machine output, --verify, refusals, bad input and a full disk."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from _runtime_factories import TinyModels, shared_tiny_models
from _subprocess import kill_9_mid_bulk_run, repo_env
from PIL import Image

from tgan_deploy.runtime import Sampler
from tgan_deploy.runtime.bulk import BulkOptions, BulkWriteError, OutputInUseError, SeedPlan, run_bulk

N, PART = 3000, 200  # the kill -9 runs: 15 parts, long enough to be killed mid-run


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


@pytest.fixture(scope="module")
def sampler(tiny_models: TinyModels) -> Sampler:
    with Sampler.open(tiny_models.export) as s:
        yield s


def tgan_sample(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tgan_deploy", "sample", *args], capture_output=True, text=True,
                          env=repo_env(), timeout=timeout)


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def one_error_line(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and all(w in lines[0] for w in words), proc.stderr


# -- formats -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("image_format", ["png", "npy", "tar"])
def test_each_format_holds_exactly_the_samplers_images(sampler: Sampler, tiny_models: TinyModels, tmp_path: Path,
                                                       image_format: str) -> None:
    plan = SeedPlan.from_options(n=None, seed=0, seeds=[5, 9, 2, 40, 41], part_size=2)
    run_bulk(sampler, tiny_models.export, plan, tmp_path, BulkOptions(image_format, truncation=0.7))
    expected = sampler.sample([5, 9, 2, 40, 41], truncation=0.7)
    if image_format == "png":
        got = np.stack([np.asarray(Image.open(tmp_path / f"seed-{s:06d}.png")) for s in (5, 9, 2, 40, 41)])
    elif image_format == "npy":
        got = np.load(tmp_path / "images.npy", mmap_mode="r")
        assert list(np.load(tmp_path / "seeds.npy")) == [5, 9, 2, 40, 41]
    else:
        members: dict[str, bytes] = {}
        for shard in ("shard-000000.tar", "shard-000001.tar", "shard-000002.tar"):
            with tarfile.open(tmp_path / shard) as tar:
                for m in tar.getmembers():
                    assert (m.mtime, m.uid, m.gid, m.uname, m.mode) == (0, 0, 0, "", 0o644)
                    members[m.name] = tar.extractfile(m).read()  # type: ignore[union-attr]
        assert json.loads(members["000040.json"]) == {"seed": 40, "truncation": 0.7, "psi": None}
        got = np.stack([np.asarray(Image.open(io.BytesIO(members[f"{s:06d}.png"]))) for s in (5, 9, 2, 40, 41)])
    assert np.array_equal(got, expected)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["count"] == 5 and [p["count"] for p in manifest["parts"]] == [2, 2, 1]
    assert manifest["job"]["truncation"] == 0.7 and manifest["job"]["seeds"] == {"list": [5, 9, 2, 40, 41]}
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # journal and job file removed


def test_png_text_chunks_are_written_and_part_of_the_identity(sampler: Sampler, tiny_models: TinyModels,
                                                               tmp_path: Path) -> None:
    plan = SeedPlan.from_options(n=3, seed=4, seeds=None, part_size=2)
    options = BulkOptions("png", png_text=lambda seed: {"tgan-deploy": json.dumps({"seed": seed})})
    run_bulk(sampler, tiny_models.export, plan, tmp_path, options)
    assert json.loads(Image.open(tmp_path / "seed-000005.png").info["tgan-deploy"]) == {"seed": 5}
    assert np.array_equal(np.asarray(Image.open(tmp_path / "seed-000005.png")), sampler.sample([5])[0])
    with pytest.raises(OutputInUseError, match="png_text"):
        run_bulk(sampler, tiny_models.export, plan, tmp_path, BulkOptions("png"))


@pytest.mark.parametrize("image_format, suffix", [("jpeg", ".jpg"), ("webp", ".webp")])
def test_lossy_formats_are_real_files_and_deterministic(sampler: Sampler, tiny_models: TinyModels, tmp_path: Path,
                                                        image_format: str, suffix: str) -> None:
    plan = SeedPlan.from_options(n=3, seed=7, seeds=None, part_size=2)
    for out in (tmp_path / "a", tmp_path / "b"):
        run_bulk(sampler, tiny_models.export, plan, out, BulkOptions(image_format))
    assert contents(tmp_path / "a") == contents(tmp_path / "b")
    image = Image.open(tmp_path / "a" / f"seed-000008{suffix}")
    assert image.format == image_format.upper() and image.size == (32, 32)
    # lossy, but close to the sampler's image
    assert np.abs(np.asarray(image, np.int16) - sampler.sample([8])[0]).mean() < 20


# -- kill -9 and --resume ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def uninterrupted(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("bulk-reference")
    outs = {}
    for image_format in ("png", "tar", "npy"):
        out = base / image_format
        proc = tgan_sample(str(tiny_models.export), "--n", str(N), "--shard-size", str(PART),
                           "--format", image_format, "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        outs[image_format] = out
    return outs


@pytest.mark.parametrize("image_format", ["png", "tar", "npy"])
def test_kill_9_mid_run_then_resume_is_byte_identical(tiny_models: TinyModels, uninterrupted: dict[str, Path],
                                                      tmp_path: Path, image_format: str) -> None:
    out = tmp_path / "out"
    args = [str(tiny_models.export), "--n", str(N), "--shard-size", str(PART), "--format", image_format,
            "--out", str(out)]
    kill_9_mid_bulk_run(["sample", *args], out / ".tgan-progress.jsonl")
    assert not (out / "manifest.json").exists()
    refused = tgan_sample(*args)  # the same command without --resume neither mixes nor restarts
    one_error_line(refused, 2, "unfinished run", "--resume")
    resumed = tgan_sample(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    written = int(resumed.stdout.split()[1])  # "wrote W images to OUT as FORMAT, N in all, ..."
    assert 0 < written < N and f"{N} in all" in resumed.stdout  # only what the killed run had not finished
    assert contents(out) == contents(uninterrupted[image_format])
    again = tgan_sample(*args, "--resume")
    assert again.returncode == 0 and "nothing to do" in again.stdout


# -- sharding and --verify ---------------------------------------------------------------------------
def test_shards_union_is_the_single_machine_output_and_verify_checks_it(
        tiny_models: TinyModels, uninterrupted: dict[str, Path], tmp_path: Path) -> None:
    parts = [tmp_path / f"part-{i}" for i in range(4)]
    for i, out in enumerate(parts):
        proc = tgan_sample(str(tiny_models.export), "--n", str(N), "--shard-size", str(PART), "--format", "tar",
                           "--shard", f"{i}/4", "--out", str(out))
        assert proc.returncode == 0, proc.stderr
    union: dict[str, bytes] = {}
    for out in parts:
        shard_files = {k: v for k, v in contents(out).items() if k != "manifest.json"}
        assert not set(shard_files) & set(union)  # disjoint
        union.update(shard_files)
    reference = contents(uninterrupted["tar"])
    reference.pop("manifest.json")
    assert union == reference
    ok = tgan_sample("--verify", *map(str, parts))
    assert ok.returncode == 0 and "complete, no overlap" in ok.stdout, ok.stderr
    one_error_line(tgan_sample("--verify", str(parts[0]), str(parts[2])), 1, "parts are in none")
    one_error_line(tgan_sample("--verify", *map(str, parts), str(parts[1])), 1, "is in both")
    corrupt = parts[3] / "shard-000014.tar"
    data = bytearray(corrupt.read_bytes())
    data[600] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    one_error_line(tgan_sample("--verify", *map(str, parts)), 1, "part 14", "checksum")


def test_verify_sees_unclaimed_and_missing_files(uninterrupted: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "copy"
    out.mkdir()
    for name, data in contents(uninterrupted["png"]).items():
        (out / name).write_bytes(data)
    (out / "seed-999999.png").write_bytes(b"x")
    one_error_line(tgan_sample("--verify", str(out)), 1, "does not claim")
    (out / "seed-999999.png").unlink()
    (out / "seed-000123.png").unlink()
    one_error_line(tgan_sample("--verify", str(out)), 1, "part 0")


# -- refusals and bad input --------------------------------------------------------------------------
def test_other_job_in_out_is_refused_and_force_replaces_it(tiny_models: TinyModels, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    assert tgan_sample(str(tiny_models.export), "--n", "4", "--out", out).returncode == 0
    one_error_line(tgan_sample(str(tiny_models.export), "--n", "4", "--psi", "0.5", "--out", out), 2,
                   "another job", "psi", "--force")
    one_error_line(tgan_sample(str(tiny_models.export_uint8), "--n", "4", "--out", out), 2, "model_sha256")
    forced = tgan_sample(str(tiny_models.export), "--n", "2", "--format", "npy", "--force", "--out", out)
    assert forced.returncode == 0, forced.stderr
    assert sorted(os.listdir(out)) == ["images.npy", "manifest.json", "seeds.npy"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    one_error_line(tgan_sample(str(tiny_models.export), "--n", "2", "--out", str(tmp_path / "mine")), 2,
                   "not empty")


@pytest.mark.parametrize("args, message", [
    (["--format", "gif"], "--format 'gif' is not one of"),
    (["--shard", "3/2"], "--shard 3/2"),
    (["--shard", "x"], "write I/N"),
    (["--n", "0"], "positive integer"),
    (["--shard-size", "0"], "--shard-size"),
    (["--seeds", "1,1"], "repeats"),
])
def test_bad_options_are_one_line_and_write_nothing(tiny_models: TinyModels, tmp_path: Path, args: list[str],
                                                    message: str) -> None:
    one_error_line(tgan_sample(str(tiny_models.export), *args, "--out", str(tmp_path / "out")), 2, message)
    assert not (tmp_path / "out").exists()


def test_bulk_options_with_a_file_out_are_refused(tiny_models: TinyModels, tmp_path: Path) -> None:
    one_error_line(tgan_sample(str(tiny_models.export), "--format", "tar", "--out", str(tmp_path / "x.npz")), 2,
                   "apply to a directory --out")
    assert not (tmp_path / "x.npz").exists()


def test_unwritable_out_is_one_line(tiny_models: TinyModels, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    one_error_line(tgan_sample(str(tiny_models.export), "--n", "2", "--out", str(tmp_path / "file" / "sub")), 2,
                   "cannot be created")


# -- a full disk -------------------------------------------------------------------------------------
def test_disk_full_through_the_byte_budget_then_resume(sampler: Sampler, tiny_models: TinyModels,
                                                       tmp_path: Path) -> None:
    plan = SeedPlan.from_options(n=50, seed=0, seeds=None, part_size=10)
    run_bulk(sampler, tiny_models.export, plan, tmp_path / "reference", BulkOptions("tar"))
    out = tmp_path / "out"
    with pytest.raises(BulkWriteError, match=r"No space left on device.*--resume") as info:
        run_bulk(sampler, tiny_models.export, plan, out, BulkOptions("tar", byte_limit=70_000))
    assert info.value.exit_code == 1
    names = sorted(os.listdir(out))
    assert not [n for n in names if n.endswith(".tmp")] and "manifest.json" not in names  # partial shard removed
    journal = (out / ".tgan-progress.jsonl").read_text().splitlines()
    assert {f"shard-{json.loads(line)['part']:06d}.tar" for line in journal} == {n for n in names if n.endswith(".tar")}
    run_bulk(sampler, tiny_models.export, plan, out, BulkOptions("tar", resume=True))
    assert contents(out) == contents(tmp_path / "reference")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Path:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("image_format", ["png", "npy"])
def test_real_full_file_system_fails_in_one_line_and_resume_finishes(tiny_models: TinyModels, small_tmpfs: Path,
                                                                      image_format: str, tmp_path: Path) -> None:
    args = [str(tiny_models.export), "--n", "120", "--shard-size", "20", "--format", image_format]
    out = small_tmpfs / "out"
    full = tgan_sample(*args, "--out", str(out))
    one_error_line(full, 1, "No space left on device", "--resume")
    assert not (out / "manifest.json").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert subprocess.run(["mount", "-o", "remount,size=4m", str(small_tmpfs)]).returncode == 0  # space freed
    resumed = tgan_sample(*args, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    reference = tgan_sample(*args, "--out", str(tmp_path / "reference"))
    assert reference.returncode == 0
    assert contents(out) == contents(tmp_path / "reference")
