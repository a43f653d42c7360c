"""Scale-out: the multi-node accelerate configs parse as accelerate reads them, DeepSpeed is told chowa's micro-batch
and clipping, SFT's loss weights, the held-out share, and the refusals that need no launch. (DDP, FSDP and
DeepSpeed runs themselves are `dist` tests beside each stage's.)"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType

from chowa.errors import ChowaError
from chowa.ppo.train import check_sharding
from chowa.runtime import Runtime
from chowa.sharding import fsdp_on_cpu
from chowa.training.loop import loss_weights

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"


@pytest.mark.parametrize(("name", "kind"), [("ddp-2x8", DistributedType.MULTI_GPU), ("fsdp-2x8", DistributedType.FSDP),
                                            ("zero3-2x8", DistributedType.DEEPSPEED)])
def test_multi_node_configs_are_what_accelerate_reads(name, kind):
    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert config.distributed_type == kind and config.num_machines == 2 and config.num_processes == 16
    assert config.mixed_precision == "bf16"
    if kind == DistributedType.FSDP:
        assert config.fsdp_config["fsdp_version"] == 2
        assert config.fsdp_config["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    if kind == DistributedType.DEEPSPEED:
        assert config.deepspeed_config["zero_stage"] == 3 and config.deepspeed_config["zero3_save_16bit_model"]


def _deepspeed(config: dict, prepared: list):
    plugin = SimpleNamespace(deepspeed_config=config)
    accelerator = SimpleNamespace(distributed_type=DistributedType.DEEPSPEED,
                                  state=SimpleNamespace(deepspeed_plugin=plugin),
                                  prepare=lambda *objects: prepared.extend(objects) or objects)
    return SimpleNamespace(accelerator=accelerator)


def test_deepspeed_is_told_the_micro_batch_and_its_clipping_must_be_chowas():
    """chowa prepares no DataLoader, so DeepSpeed's `auto` micro-batch comes from train.batch_size; a config that
    clips at another norm than optim.grad_clip is refused (DeepSpeed applies its own), an unset one gets chowa's."""
    config, prepared = {"train_micro_batch_size_per_gpu": "auto", "gradient_clipping": 1.0}, []
    model, optimizer = object(), object()
    assert Runtime.prepare(_deepspeed(config, prepared), model, optimizer, micro_batch=4, grad_clip=1.0) == (
        model, optimizer)
    assert config["train_micro_batch_size_per_gpu"] == 4 and prepared == [model, optimizer]
    with pytest.raises(ChowaError, match="optim.grad_clip=0.5, but the DeepSpeed config clips at 1.0"):
        Runtime.prepare(_deepspeed(dict(config), []), model, optimizer, micro_batch=4, grad_clip=0.5)
    unset = {"train_micro_batch_size_per_gpu": "auto", "gradient_clipping": "auto"}
    Runtime.prepare(_deepspeed(unset, []), model, optimizer, micro_batch=2, grad_clip=0.5)
    assert unset["gradient_clipping"] == 0.5  # accelerate would fill an unset one with 1.0


def test_loss_weights_make_the_step_the_mean_over_all_its_terms():
    """Hand-computed: micro-batch means over 3 and 1 reply tokens on this process, 8 tokens in the step on 2
    processes. Weighted, the backward pass's division by 2 micro-batches and 2 processes leaves each mean weighted
    by its tokens over 8: 3/8 and 1/8."""
    weights = loss_weights([3, 1], total=8, processes=2)
    assert weights == [1.5, 0.5]
    assert [w / (2 * 2) for w in weights] == [3 / 8, 1 / 8]
    assert loss_weights([4, 4], total=16, processes=2) == [1.0, 1.0]  # equal counts: plain means


@pytest.mark.parametrize(("rank", "expected"), [(0, [([0, 2], True), ([4], True)]),
                                                (1, [([1, 3], True), ([0], False)])])
def test_share_gives_every_process_as_many_batches(rank, expected):
    """5 items over 2 processes in batches of 2: rank 0 has 3 (two batches), rank 1 has 2 and a surplus batch of
    the first item, marked to be dropped, so both run the forward twice."""
    runtime = SimpleNamespace(process_index=rank, num_processes=2)
    assert list(Runtime.share(runtime, [0, 1, 2, 3, 4], batch_size=2)) == expected


def test_ppo_refuses_fsdp1_at_start():
    def runtime(kind, is_fsdp2):
        return SimpleNamespace(accelerator=SimpleNamespace(distributed_type=kind, is_fsdp2=is_fsdp2))

    with pytest.raises(ChowaError, match="ppo: FSDP1 cannot gather the policy"):
        check_sharding(runtime(DistributedType.FSDP, is_fsdp2=False))
    for kind in (DistributedType.MULTI_GPU, DistributedType.FSDP, DistributedType.DEEPSPEED):
        check_sharding(runtime(kind, is_fsdp2=True))


def test_fsdp_on_cpu_processes_is_refused_beside_a_gpu(monkeypatch):
    """fully_shard would put the shards on the machine's GPU, beside a gloo group of CPU processes."""
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda: torch.device("cuda"))
    with pytest.raises(ChowaError, match="FSDP on CPU processes of a machine with a cuda would place its shards"):
        fsdp_on_cpu(SimpleNamespace())
