"""Scale-out: the multi-node accelerate configs parse as accelerate reads them, and DeepSpeed is told chowa's
micro-batch and clipping. (DDP, FSDP and DeepSpeed runs themselves are `dist` tests beside each stage's.)"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType

from chowa.errors import ChowaError
from chowa.runtime import Runtime

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
