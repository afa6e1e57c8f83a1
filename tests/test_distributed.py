"""Data-parallel training (lib.distributed + lib.train.fit): two ``gloo`` processes on the CPU equal one process
trained on the combined batch, for a one-player (VAE) and a two-player (AVB) method; only rank 0 writes."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lib import registry
from lib.distributed import ShardedSampler, allreduce_mean_, cleanup
from lib.train import fit, set_trainable

WORLD, PER_RANK, STEPS, LR = 2, 8, 4, 1e-2
ROOT = Path(__file__).resolve().parents[1]


def _model(method):
    torch.manual_seed(0)
    return registry.build(method, x_shape=(16,), z_dim=2, hidden=(8,), noise_dim=4, adversary_hidden=(8,))


def _data():
    return torch.rand(64, 16, generator=torch.Generator().manual_seed(1))


def _worker(rank, method, tmp):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=WORLD)
    try:
        model = _model(method)
        torch.manual_seed(100 + rank)  # rank-offset noise
        sampler = ShardedSampler(_data(), PER_RANK, seed=7)
        fit(model, sampler, steps=STEPS, lr={p: LR for p in model.players}, run_dir=Path(tmp) / f"run_rank{rank}",
            log_every=1, progress=False)
        torch.save(model.state_dict(), Path(tmp) / f"params_rank{rank}.pt")
        mean = torch.tensor([float(rank + 1)])
        allreduce_mean_([mean])
        torch.save(mean, Path(tmp) / f"mean_rank{rank}.pt")
    finally:
        cleanup()


def _reference(method):
    """One process, global batch of WORLD * PER_RANK; slice r's noise from rank r's RNG stream, gradients averaged."""
    model = _model(method)
    model.train()
    sampler = ShardedSampler(_data(), WORLD * PER_RANK, seed=7, rank=0, world=1)
    opts = {p: torch.optim.Adam(model.player_parameters(p), lr=LR, betas=(0.5, 0.999)) for p in model.players}
    streams = []
    for r in range(WORLD):
        torch.manual_seed(100 + r)
        streams.append(torch.get_rng_state())
    for _ in range(STEPS):
        for player, k in model.schedule:
            set_trainable(model, player)
            for _ in range(k):
                x = sampler.next()
                opts[player].zero_grad()
                for r in range(WORLD):
                    torch.set_rng_state(streams[r])
                    (model.loss(player, x[r * PER_RANK: (r + 1) * PER_RANK])["loss"] / WORLD).backward()
                    streams[r] = torch.get_rng_state()
                opts[player].step()
    set_trainable(model, None)
    return model


@pytest.mark.parametrize("method", ["vae", "avb"])
def test_two_processes_equal_one_process_on_the_combined_batch(method, tmp_path):
    mp.spawn(_worker, args=(method, str(tmp_path)), nprocs=WORLD, join=True)
    ref = _reference(method)
    moved = False
    for r in range(WORLD):
        got = torch.load(tmp_path / f"params_rank{r}.pt")
        for k, v in ref.state_dict().items():
            torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6, msg=f"rank {r}, {k}")
            moved |= not torch.equal(v, _model(method).state_dict()[k])
    assert moved, "training did not change the parameters"
    for r in range(WORLD):  # Adam cannot tell a sum from a mean of gradients; check the mean itself
        assert torch.load(tmp_path / f"mean_rank{r}.pt").item() == 1.5
    assert (tmp_path / "run_rank0" / "ckpt.pt").exists() and (tmp_path / "run_rank0" / "metrics.jsonl").exists()
    assert not (tmp_path / "run_rank1").exists(), "only rank 0 may write"


def test_sharded_sampler_slices_the_global_batch():
    data = torch.arange(20.0).unsqueeze(1)
    whole = ShardedSampler(data, 6, seed=3, rank=0, world=1)
    parts = [ShardedSampler(data, 3, seed=3, rank=r, world=2) for r in range(2)]
    for _ in range(5):  # crosses an epoch boundary (18 of 20 rows per epoch)
        assert torch.equal(whole.next(), torch.cat([p.next() for p in parts]))
    with pytest.raises(ValueError, match="batch_size \\* world size"):
        ShardedSampler(data, 11, seed=0, rank=0, world=2)


def test_torchrun_launch_of_the_training_command(tmp_path):
    """The documented command, two CPU processes, a few iterations: it must finish and write one run folder."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AVAE_NUM_THREADS": "1", "CI": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "paper_reproductions.train", "--method", "vae", "--arch", "mlp", "--steps", "3", "--batch", "16",
           "--device", "cpu", "--run-dir", str(tmp_path / "run"), "--train-images", "512"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "run" / "final_metrics.json").exists() and (tmp_path / "run" / "ckpt.pt").exists()
    assert '"world_size": 2' in (tmp_path / "run" / "fit_config.json").read_text()
