"""The byte-group model of byGPT-JP (specs/byte-model.md §11): codec, tokenizer, merge, loss, cached and batched
generation, stops, valid groups, and folders that plain transformers loads without chowa."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer

from chowa.bytegroup.hf.codec_bytegroup import slot_ranges
from chowa.bytegroup.hf.modeling_bytegroup import byte_loss
from chowa.bytegroup.model import (
    ByteGroupConfig,
    ByteGroupForCausalLM,
    ByteGroupTokenizer,
    CodecError,
    get_codec,
    register,
    save_folder,
    to_slot_sum,
)
from chowa.errors import ChowaError
from chowa.tokenizer.stats import tokenizer_stats

F4 = get_codec("f4-utf8")
SCALARS = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


def tiny_model(seed: int = 0, **overrides) -> ByteGroupForCausalLM:
    torch.manual_seed(seed)
    settings = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                    intermediate_size=172, max_position_embeddings=64, rms_norm_eps=1e-5)
    config = ByteGroupConfig(**settings | overrides)
    return ByteGroupForCausalLM(config).eval()


# --- 1. codec ---------------------------------------------------------------------------------------------------


def test_f4_examples_and_every_scalar_value_round_trip_one_group_per_character():
    assert F4.encode("A\nあ😀").hex(" ") == "41 ff ff ff 0a ff ff ff e3 81 82 ff f0 9f 98 80"
    assert F4.encode("\x00\U0010ffff").hex(" ") == "00 ff ff ff f4 8f bf bf"
    for start in range(0, len(SCALARS), 200_000):  # all 1,112,064 scalar values, in chunks
        text = "".join(map(chr, SCALARS[start:start + 200_000]))
        data = F4.encode(text)
        assert len(data) == 4 * len(text)
        assert F4.decode(data, errors="strict") == text
    assert len(SCALARS) == 1_112_064


def test_f4_table_enumerates_exactly_the_scalar_values():
    groups = set()
    for lead in range(256):
        ranges = slot_ranges(lead)
        if ranges is not None:
            groups |= {bytes((lead, a, b, c)) for a in ranges[0] for b in ranges[1] for c in ranges[2]}
    assert len(groups) == 1_112_064
    assert {F4.decode(g, errors="strict") for g in groups} == set(map(chr, SCALARS))


@pytest.mark.parametrize("group", ["80 ff ff ff", "c3 ff ff ff", "41 42 ff ff", "41 ff 42 ff", "c0 80 ff ff",
                                   "ed a0 80 ff", "f4 90 80 80", "fe 7f fe fe", "41 ff ff"])
def test_f4_invalid_groups_are_replaced_or_refused(group):
    data = bytes.fromhex(group)
    assert F4.decode(b"A\xff\xff\xff" + data, errors="replace") == "A\ufffd"
    assert F4.decode(data, errors="skip") == ""
    with pytest.raises(CodecError, match="bytes 0-"):
        F4.decode(data, errors="strict")


def test_f4_lone_surrogate_is_refused_or_replaced():
    with pytest.raises(CodecError, match="character 1 .* U\\+D800"):
        F4.encode("a\ud800", errors="strict")
    assert F4.decode(F4.encode("a\ud800", errors="replace")) == "a\ufffd"


def test_f4_validity_agrees_with_python_utf8_on_a_grid_of_groups():
    def oracle(group: bytes) -> bool:  # strip the fill, decode as UTF-8, one character whose F4 form is the group
        body = group.rstrip(b"\xff")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return len(text) == 1 and F4.encode(text) == group

    tails = (0x00, 0x7F, 0x80, 0xBF, 0xC0, 0xFE, 0xFF)
    for b0 in range(256):
        for b1 in range(256):
            for b2 in tails:
                for b3 in tails:
                    group = bytes((b0, b1, b2, b3))
                    assert F4.is_valid_group(group) == oracle(group), group.hex(" ")


def test_other_codecs_round_trip():
    text = "吾輩は猫 cat\n😀"
    for name in ("utf8", "f4-utf32", "ga-utf8"):
        codec = get_codec(name)
        assert codec.decode(codec.encode(text), errors="strict") == text, name
    assert get_codec("ga-utf8").encode("aあ").hex(" ") == "61 e3 81 82"  # fits one group
    assert get_codec("ga-utf8").encode("abあ").hex(" ") == "61 62 ff ff e3 81 82"  # あ starts the next group
    assert get_codec("f4-utf32").encode("あ").hex(" ") == "00 00 30 42"
    with pytest.raises(CodecError, match="unknown byte codec 'utf16'"):
        get_codec("utf16")


# --- 2. tokenizer -----------------------------------------------------------------------------------------------


def test_tokenizer_specials_padding_masks_and_decoding():
    tokenizer = ByteGroupTokenizer()
    assert tokenizer.eos_token_ids == [0xFE, 2, 0xFE, 0xFE] and tokenizer.pad_token_id == 0xFE
    assert tokenizer.encode("\n", add_special_tokens=False) == [0x0A, 0xFF, 0xFF, 0xFF]
    ids = tokenizer.encode("<s>猫</s>", add_special_tokens=False)
    assert ids == [0xFE, 1, 0xFE, 0xFE, 0xE7, 0x8C, 0xAB, 0xFF, 0xFE, 2, 0xFE, 0xFE]
    assert tokenizer.decode(ids) == "<s>猫</s>" and tokenizer.decode(ids, skip_special_tokens=True) == "猫"
    assert tokenizer.encode("猫")[:4] == tokenizer.bos_group  # add_special_tokens: BOS group first
    batch = tokenizer([tokenizer.bos_token + "こんにちは", tokenizer.bos_token + "A"], padding="longest",
                      add_special_tokens=False)
    short, mask = batch["input_ids"][1], batch["attention_mask"][1]
    assert len(short) == 24 and short[:16] == tokenizer.pad_group * 4 and mask == [0] * 16 + [1] * 8
    right = tokenizer(["A", "こんにちは"], padding="longest", padding_side="right", add_special_tokens=False)
    assert right["input_ids"][0][4:] == tokenizer.pad_group * 4 and right["attention_mask"][0] == [1] * 4 + [0] * 16


def test_tokenizer_truncates_in_whole_groups():
    tokenizer = ByteGroupTokenizer()
    ids = tokenizer("吾輩は猫である", truncation=True, max_length=10, add_special_tokens=False)["input_ids"]
    assert ids == list(F4.encode("吾輩"))  # 10 bytes allowed -> 2 whole groups
    tokenizer.truncation_side = "left"
    assert tokenizer.decode(tokenizer("あいう", truncation=True, max_length=8, add_special_tokens=False)
                            ["input_ids"]) == "いう"
    tokenizer.truncation_side = "right"  # a pair loses whole groups from the longer side: 5 + 2 groups -> 1 + 2
    pair = tokenizer("あいうえお", "かき", truncation="longest_first", max_length=15, add_special_tokens=False)
    assert tokenizer.decode(pair["input_ids"]) == "あかき" and len(pair["input_ids"]) == 12


def test_tokenizer_refuses_text_the_codec_cannot_encode():
    with pytest.raises(CodecError, match="lone surrogate"):
        ByteGroupTokenizer().encode("a\ud800")


# --- 3. merge, 4. loss ------------------------------------------------------------------------------------------


def test_slot_sum_merge_is_the_same_function_as_concat_linear():
    model = tiny_model()
    ids = torch.tensor([list(F4.encode("猫が好き"))])
    converted = to_slot_sum(model)
    torch.testing.assert_close(converted.merged_embeddings(ids), model.merged_embeddings(ids), atol=1e-5, rtol=0)
    torch.testing.assert_close(converted(ids).logits, model(ids).logits, atol=1e-5, rtol=0)
    assert sum(p.numel() for p in converted.merge.parameters()) == 4 * 256 * 64


def test_loss_is_cross_entropy_per_byte_shifted_by_one_group():
    ids = torch.tensor([list(F4.encode("AB"))])  # groups 41 FF FF FF, 42 FF FF FF
    zero = torch.zeros(1, 2, 4, 256)
    loss, _ = byte_loss(zero, ids, ids, [0xFE, 0, 0xFE, 0xFE])
    assert loss.item() == pytest.approx(math.log(256), abs=1e-6)  # bits per byte 8.0
    assert loss.item() / math.log(2) == pytest.approx(8.0, abs=1e-6)
    right = zero.clone()  # logit ln 255 on each byte of group 1, read at group 0: p = 255 / (255 + 255) = 1/2
    right[0, 0, torch.arange(4), ids[0, 4:]] = math.log(255)
    loss, heads = byte_loss(right, ids, ids, [0xFE, 0, 0xFE, 0xFE])
    assert loss.item() / math.log(2) == pytest.approx(1.0, abs=1e-6)
    assert heads.tolist() == pytest.approx([math.log(2)] * 4)
    pair = torch.tensor([list(F4.encode("あ😀"))])  # E3 81 82 FF, F0 9F 98 80: no byte in common per slot
    own, next_group = zero.clone(), zero.clone()
    own[0, 0, torch.arange(4), pair[0, :4]] = 10.0  # favouring group k's own bytes (no shift) is scored badly
    next_group[0, 0, torch.arange(4), pair[0, 4:]] = 10.0  # group k + 1's, well
    assert byte_loss(own, pair, pair, [0xFE, 0, 0xFE, 0xFE])[0] > math.log(256)
    assert byte_loss(next_group, pair, pair, [0xFE, 0, 0xFE, 0xFE])[0] < 0.02  # -ln(e^10 / (e^10 + 255))
    ignored = ids.clone()
    ignored[0, 4:] = -100  # nothing left to score: 0
    assert byte_loss(right, ids, ignored, [0xFE, 0, 0xFE, 0xFE])[0].item() == 0.0
    padded = torch.tensor([[0x41, 0xFF, 0xFF, 0xFF, 0xFE, 0, 0xFE, 0xFE]])  # a PAD group is never a target
    assert byte_loss(zero, padded, padded, [0xFE, 0, 0xFE, 0xFE])[0].item() == 0.0


def test_model_refuses_bytes_that_are_not_whole_groups():
    with pytest.raises(ValueError, match="7 bytes, not a multiple of 4"):
        tiny_model()(torch.zeros(1, 7, dtype=torch.long))


# --- 5. cache, 6. batch, 7. stops, 8. valid groups ----------------------------------------------------------------


def _greedy_without_cache(model, ids, steps):
    """Greedy decoding that recomputes the whole prefix each step: (bytes (1, T + 4·steps), last logits)."""
    logits = None
    for _ in range(steps):
        logits = model(ids).logits[:, -1]
        ids = torch.cat([ids, logits.argmax(-1)], 1)
    return ids, logits


def test_cached_greedy_equals_recomputing_the_prefix():
    model, tokenizer = tiny_model(), ByteGroupTokenizer()
    ids = torch.tensor([tokenizer.encode("吾輩は猫である")])
    expected, last_logits = _greedy_without_cache(model, ids, 6)
    stop = [[0xAA] * 9]  # a stop that never occurs
    assert torch.equal(model.group_generate(ids, stops=stop, max_new_tokens=24), expected)
    with torch.no_grad():  # the cached forward's logits of the last step equal the recomputed ones
        prefix = model(expected[:, :-8], use_cache=True)
        step = model(expected[:, -8:-4], cache=prefix.cache)
    torch.testing.assert_close(step.logits[:, -1], last_logits, atol=1e-5, rtol=0)


def test_left_padded_batch_equals_each_prompt_alone():
    model, tokenizer = tiny_model(), ByteGroupTokenizer()
    texts = [tokenizer.bos_token + "吾輩は猫である。名前は", tokenizer.bos_token + "A"]
    batch = tokenizer(texts, padding="longest", add_special_tokens=False, return_tensors="pt")
    for penalty in (1.0, 1.3):  # the repetition penalty reads only a row's own real groups
        out = model.group_generate(batch["input_ids"], batch["attention_mask"], stops=[[0xAA] * 9],
                                   max_new_tokens=20, repetition_penalty=penalty)
        for row, text in enumerate(texts):
            alone = torch.tensor([tokenizer.encode(text, add_special_tokens=False)])
            single = model.group_generate(alone, stops=[[0xAA] * 9], max_new_tokens=20, repetition_penalty=penalty)
            assert out[row, -20:].tolist() == single[0, -20:].tolist()


def test_stops_cross_group_boundaries_and_finished_rows_get_pad_groups(monkeypatch):
    model = tiny_model()
    script = {0: list(F4.encode("\n\nHuman:")), 1: list(F4.encode("abcdefghij"))}  # rows' forced outputs

    def forced(scores, *args):  # make group k of row r the k-th scripted group
        step = forced.step
        forced.step += 1
        return torch.tensor([script[r][4 * step:4 * step + 4] or [0x5A, 0xFF, 0xFF, 0xFF] for r in range(2)])

    forced.step = 0
    monkeypatch.setattr("chowa.bytegroup.hf.modeling_bytegroup._choose_group", forced)
    ids = torch.tensor([list(F4.encode("Q")), list(F4.encode("R"))])
    stop = list(F4.encode("\n\nHuman:"))  # 32 bytes spanning 8 steps
    out = model.group_generate(ids, stops=[stop], max_new_tokens=48)
    generated = out[:, 4:]
    assert generated[0, :32].tolist() == stop and generated[0, 32:].tolist() == [0xFE, 0, 0xFE, 0xFE] * 4
    assert F4.decode(bytes(generated[1, :40].tolist())) == "abcdefghij"
    forced.step = 0
    assert model.group_generate(ids, stops=[stop], max_new_tokens=5).shape[1] == 4 + 8  # 5 bytes -> 2 groups
    forced.step = 0
    trimmed = model.group_generate(ids, stops=[stop], max_new_tokens=48, trim_stop=True)
    assert trimmed[0, 4:].tolist() == [0xFE, 0, 0xFE, 0xFE] * 12


def test_a_utf8_stop_starting_mid_group_is_found(monkeypatch):
    model = tiny_model(codec="utf8")
    stream = list(get_codec("utf8").encode("xyz\n\nHuman: more text here"))  # the stop starts at byte 3 of group 0
    steps = []

    def forced(scores, *args):
        steps.append(1)
        return torch.tensor([stream[4 * len(steps) - 4:4 * len(steps)]])

    monkeypatch.setattr("chowa.bytegroup.hf.modeling_bytegroup._choose_group", forced)
    out = model.group_generate(torch.tensor([list(b"Q\xff\xff\xff")]), stops=[list(b"\n\nHuman:")],
                               max_new_tokens=64)
    assert bytes(out[0, 4:].tolist()) == b"xyz\n\nHuman: " and len(steps) == 3  # found in the third group
    steps.clear()  # a stop encoded by the tokenizer carries fill bytes the unaligned stream never has after "\n"
    newline = ByteGroupTokenizer(codec="utf8").encode("\n", add_special_tokens=False)
    assert newline == [0x0A, 0xFF, 0xFF, 0xFF]
    out = model.group_generate(torch.tensor([list(b"Q\xff\xff\xff")]), stops=[newline], max_new_tokens=64)
    assert bytes(out[0, 4:].tolist()) == b"xyz\n" and len(steps) == 1


def test_valid_groups_are_the_best_valid_group_and_sampling_yields_only_valid_groups():
    from chowa.bytegroup.hf.modeling_bytegroup import _choose_group, allowed_bytes

    config = tiny_model().config
    allowed = allowed_bytes(config, torch.device("cpu"))
    torch.manual_seed(0)
    scores = torch.randn(1, 4, 256)
    scores[0, 0, 0x41] += 20.0  # per-slot argmax: 41 80 ?? ?? -- not a valid group
    scores[0, 1, 0x80] += 20.0
    assert not F4.is_valid_group(bytes(scores.argmax(-1)[0].tolist()))
    chosen = _choose_group(scores, False, 1.0, 0, 1.0, allowed, None)[0].tolist()
    table = torch.tensor([(lead, a, b, c) for lead in range(256) if (r := slot_ranges(lead))
                          for a in r[0] for b in r[1] for c in r[2]] + [(0xFE, k, 0xFE, 0xFE) for k in range(3)])
    assert len(table) == 1_112_064 + 3  # every character group and the three specials, scored one by one
    logp = scores.log_softmax(-1)[0]
    totals = sum(logp[j, table[:, j]] for j in range(4))
    assert chosen == table[totals.argmax()].tolist()
    # top-k 1 leaves only the invalid 0x41 0x80 in slots 0 and 1: the draw falls back to the unfiltered heads
    drawn = _choose_group(scores, True, 1.0, 1, 1.0, allowed, torch.Generator().manual_seed(0))[0].tolist()
    assert F4.is_valid_group(bytes(drawn))
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        group = bytes(_choose_group(torch.randn(1, 4, 256) * 3, True, 1.0, 0, 1.0, allowed, generator)[0].tolist())
        assert F4.is_valid_group(group) or (group[0] == 0xFE and group[2:] == b"\xfe\xfe" and group[1] < 3)


# --- 9. folders plain transformers loads ------------------------------------------------------------------------

PLAIN = r"""
import json, sys
sys.modules["chowa"] = None  # importing chowa is impossible here
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, texts = sys.argv[1], json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
inputs = tokenizer([tokenizer.bos_token + t for t in texts], padding="longest", add_special_tokens=False,
                   return_tensors="pt")
out = model.generate(**inputs, max_new_tokens=32, eos_token_id=[tokenizer.encode("\n", add_special_tokens=False)],
                     pad_token_id=tokenizer.pad_token_id, do_sample=False)
explicit = model.generate(inputs["input_ids"], attention_mask=inputs["attention_mask"], max_new_tokens=32,
                          custom_generate=folder + "/custom_generate", do_sample=False,
                          eos_token_id=[tokenizer.encode("\n", add_special_tokens=False)])
as_dict = model.generate(**inputs, max_new_tokens=32, do_sample=False, return_dict_in_generate=True,
                         eos_token_id=[tokenizer.encode("\n", add_special_tokens=False)])
print(json.dumps({"ids": inputs["input_ids"].tolist(), "logits": model(**inputs).logits[:, -1].tolist(),
                  "dict": as_dict.sequences.tolist(),
                  "out": out.tolist(), "explicit": explicit.tolist(), "generate": type(model.generate).__name__,
                  "replies": [tokenizer.decode(row[inputs["input_ids"].shape[1]:]) for row in out]}))
"""


def _plain_transformers(folder, texts: list[str], cwd, python: str = sys.executable) -> dict:
    """The card's usage run where chowa cannot be imported: its ids, last logits, outputs and decoded replies."""
    result = subprocess.run([python, "-c", PLAIN, str(folder), json.dumps(texts)], capture_output=True,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_saved_folder_runs_the_cards_usage_in_plain_transformers_without_chowa(tmp_path):
    register()
    model, tokenizer = tiny_model(), ByteGroupTokenizer()
    folder = save_folder(model, tokenizer, tmp_path / "bytes")
    texts = ["吾輩は猫である。", "名前は"]
    plain = _plain_transformers(folder, texts, tmp_path)
    inputs = tokenizer([tokenizer.bos_token + t for t in texts], padding="longest", add_special_tokens=False,
                       return_tensors="pt")
    assert plain["ids"] == inputs["input_ids"].tolist()
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(plain["logits"]), model(**inputs).logits[:, -1], atol=1e-5, rtol=0)
    expected = model.group_generate(inputs["input_ids"], inputs["attention_mask"],
                                    stops=[tokenizer.encode("\n", add_special_tokens=False)], max_new_tokens=32)
    assert plain["out"] == expected.tolist() == plain["explicit"]
    assert plain["generate"] == "partial"  # from_pretrained put custom_generate/generate.py in place
    assert plain["dict"] == plain["out"]  # return_dict_in_generate: GenerateDecoderOnlyOutput.sequences


def test_tokenizer_bytes_command_writes_a_folder_that_stats_measures(tmp_path, capsys):
    from chowa.cli import main as cli

    out = tmp_path / "bytes"
    assert cli(["tokenizer", "bytes", "--out", str(out), "--specials", "<user>", "<assistant>"]) in (0, None)
    tokenizer = AutoTokenizer.from_pretrained(out, trust_remote_code=True)  # plain transformers, remote code
    assert tokenizer.encode("<user>あ", add_special_tokens=False) == [0xFE, 4, 0xFE, 0xFE, 0xE3, 0x81, 0x82, 0xFF]
    text = tmp_path / "text.jsonl"
    text.write_text(json.dumps({"text": "吾輩は猫である。"}, ensure_ascii=False) + "\n" +
                    json.dumps({"text": "cat"}) + "\n", encoding="utf-8")
    capsys.readouterr()
    cli(["tokenizer", "stats", "--tokenizer", str(out), "--input", str(text)])
    report = json.loads(capsys.readouterr().out)
    assert report["round_trip_all"] and report["bytes_per_char"] == {"ja": 4.0, "ascii": 4.0, "other": None}
    text.write_text(json.dumps({"text": "ok"}) + "\n" + '{"text": "bad \\ud800"}\n', encoding="utf-8")
    with pytest.raises(ChowaError, match=r"text.jsonl:2: .*U\+D800"):
        tokenizer_stats(str(out), [str(text)])


# --- every stage takes it: pretrain ----------------------------------------------------------------------------


def _pretrain_config(out, project_corpus, *extra):
    from chowa.config import load_config
    from chowa.config.pretrain import PretrainConfig

    return load_config(PretrainConfig, overrides=[
        f"out={out}", "tokenizer=bytes:f4-utf8", "model=bytegroup-tiny", "data.seq_len=128",
        "train.batch_size=4", "train.eval_every=4", "train.eval_batches=2", "optim.lr=3e-3", "optim.warmup_steps=2",
        "runtime.cpu=true"] + [f"data.train=[{','.join(map(str, project_corpus))}]", *extra])


def test_pretrain_a_byte_model_reports_bits_per_byte_resumes_exactly_and_saves_a_plain_folder(tmp_path, capsys,
                                                                                                project_corpus):
    from chowa.models.load import load_causal_lm
    from chowa.pretrain import main as pretrain
    from chowa.training.plots import read_metrics

    straight = pretrain(_pretrain_config(tmp_path / "straight", project_corpus, "train.steps=8",
                                         "train.save_every=4"))
    records = read_metrics(straight / "metrics.jsonl")
    evals = [r for r in records if "val_bpb" in r]
    assert evals[0]["val_bpb"] == pytest.approx(evals[0]["val_loss"] / math.log(2), abs=1e-5)
    assert evals[-1]["val_bpb"] < evals[0]["val_bpb"] - 1.0  # 8 steps already learn the fill bytes
    resumed = tmp_path / "resumed"  # the same run, its last checkpoint lost: it resumes from step 4
    pretrain(_pretrain_config(resumed, project_corpus, "train.steps=8", "train.save_every=4",
                              "train.keep_checkpoints=0"))
    shutil.rmtree(resumed / "checkpoints" / "step-00000008")
    capsys.readouterr()
    pretrain(_pretrain_config(resumed, project_corpus, "train.steps=8", "train.save_every=4",
                              "train.keep_checkpoints=0"))
    assert "step-00000004" in capsys.readouterr().out  # resumed there, did not start over
    losses = {r["step"]: r["train_loss"] for r in read_metrics(straight / "metrics.jsonl") if "train_loss" in r}
    assert {r["step"]: r["train_loss"] for r in read_metrics(resumed / "metrics.jsonl") if "train_loss" in r} == losses
    assert (straight / "custom_generate" / "generate.py").is_file() and (straight / "modeling_bytegroup.py").is_file()
    assert type(load_causal_lm(straight)).__name__ == "ByteGroupForCausalLM"


def test_byte_models_refuse_partial_groups_and_a_tokenizer_of_another_codec(tmp_path, project_corpus):
    from chowa.models.load import load_model_tokenizer
    from chowa.pretrain import main as pretrain

    with pytest.raises(ChowaError, match="data.seq_len=130 is not whole groups"):
        pretrain(_pretrain_config(tmp_path / "odd", project_corpus, "train.steps=1", "data.seq_len=130"))
    folder = save_folder(tiny_model(), ByteGroupTokenizer(), tmp_path / "f4")
    with pytest.raises(ChowaError, match="codec utf8 but the model in .* reads codec f4-utf8"):
        load_model_tokenizer(folder, "bytes:utf8")


# --- sft, generate, chat ----------------------------------------------------------------------------------------


def test_sft_trains_a_byte_model_on_replies_in_whole_groups(tmp_path):
    from chowa.config import load_config
    from chowa.config.sft import SFTConfig
    from chowa.formats import encode_prompt, render_training, save_format
    from chowa.sft import main as sft
    from chowa.tokenizer import load_tokenizer
    from chowa.training.plots import read_metrics

    tokenizer = ByteGroupTokenizer()
    folder = save_folder(tiny_model(), tokenizer, tmp_path / "base")
    save_format(folder, "rinna")
    ids, mask = render_training([{"role": "user", "content": "猫?"}, {"role": "assistant", "content": "はい"}],
                                "rinna", tokenizer)
    assert ids[:4] == tokenizer.bos_group and ids[-4:] == tokenizer.eos_token_ids and len(ids) % 4 == 0
    assert tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m]) == "はい</s>"  # reply + EOS only
    out = sft(load_config(SFTConfig, overrides=[
        f"out={tmp_path / 'sft'}", f"model={folder}", "data.train=[builtin:sft/train.jsonl]", "data.max_length=256",
        "train.steps=6", "train.batch_size=8", "train.eval_every=0", "optim.lr=3e-3", "runtime.cpu=true"]))
    losses = [r["train_loss"] for r in read_metrics(out / "metrics.jsonl") if "train_loss" in r]
    assert losses[-1] < losses[0] - 0.3
    saved = load_tokenizer(out)  # its chat_template renders what SFT trained on, BOS group included
    messages = [{"role": "user", "content": "猫?"}]
    rendered = saved.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert saved.encode(rendered, add_special_tokens=False) == encode_prompt(messages, "rinna", saved)
    with pytest.raises(ChowaError, match="data.max_length=130 is not whole groups"):
        sft(load_config(SFTConfig, overrides=[f"out={tmp_path / 'odd'}", f"model={folder}",
                                              "data.train=[builtin:sft/train.jsonl]", "data.max_length=130"]))


def test_chowa_generate_greedy_gives_the_bytes_of_the_cards_own_usage_in_plain_transformers(tmp_path, capsys):
    from chowa.cli import main as cli
    from chowa.formats import render_prompt, save_format

    # 512 groups: Vicuna's system prompt alone is 720 bytes
    folder = save_folder(tiny_model(seed=3, max_position_embeddings=512), ByteGroupTokenizer(), tmp_path / "model")
    save_format(folder, "vicuna-v1.1")
    questions = ["猫は好き?", "What is 3 + 4?"]
    prompts = [render_prompt([{"role": "user", "content": q}], "vicuna-v1.1") for q in questions]
    card = _plain_transformers(folder, prompts, tmp_path)["replies"]
    records = tmp_path / "prompts.jsonl"
    records.write_text("".join(json.dumps({"prompt": q}, ensure_ascii=False) + "\n" for q in questions),
                       encoding="utf-8")
    capsys.readouterr()
    cli(["generate", "--model", str(folder), "--input", str(records), "--greedy", "--max-new-tokens", "32",
         "--stop", "\n"])
    replies = [json.loads(line)["reply"] for line in capsys.readouterr().out.splitlines()]
    assert all(len(reply) >= 4 for reply in replies), replies  # real replies, not two empty strings
    for reply, plain in zip(replies, card, strict=True):  # the card stops at "\n" only; chowa also at the tags
        cut = plain.split("\n")[0].split("</s>")[0].split("USER:")[0].strip()
        assert reply == cut, (reply, plain)
    printed = []
    from chowa.config.generate import Sampling
    from chowa.generate import load_chat_model, stream_reply

    chat = load_chat_model(folder)
    reply = stream_reply(chat, [{"role": "user", "content": questions[0]}], Sampling(greedy=True, max_new_tokens=32,
                                                                                      stop=["\n"]), printed.append)
    assert reply == replies[0] and "".join(printed) == reply  # chat answers as generate does, streamed


# --- 10. scoring ------------------------------------------------------------------------------------------------


def test_loglikelihood_is_the_sum_over_continuation_bytes_and_batched_equals_single():
    from chowa.eval.byte_lm import ByteGroupLM

    model, tokenizer = tiny_model(seed=5), ByteGroupTokenizer()
    requests = [("吾輩は猫", "である"), ("吾輩は猫", "ではない"), ("", "Cat"), ("A" * 80, "B")]
    batched = ByteGroupLM(model, tokenizer, batch_size=4, progress=False).loglikelihood(requests)
    single = ByteGroupLM(model, tokenizer, sequential=True, progress=False).loglikelihood(requests)
    for (b, bg), (s, sg) in zip(batched, single, strict=True):
        assert b == pytest.approx(s, abs=1e-4) and bg == sg
    with torch.no_grad():  # by hand: byte t of the sequence is read at group t // 4 - 1, slot t % 4
        ids = torch.tensor([tokenizer.bos_group + list(F4.encode("吾輩は猫である"))])
        logp = model(ids).logits.float().log_softmax(-1)[0]
        start = len(ids[0]) - len(F4.encode("である"))
        manual = sum(logp[t // 4 - 1, t % 4, ids[0, t]].item() for t in range(start, len(ids[0])))
    assert batched[0][0] == pytest.approx(manual, abs=1e-4)
    # "A" * 80 + "B" = 328 bytes with BOS, over the 256-byte context: the last whole groups are kept
    assert batched[3][0] < 0 and len(ByteGroupLM(model, tokenizer)._request("A" * 80, "B")[0]) == 256


def test_jglue_multiple_choice_tasks_score_a_byte_model(tmp_path):
    from chowa.eval.jglue.runner import run_jglue
    from chowa.formats import save_format
    from tools.builtin_data.jglue import builtin_jglue_dir

    folder = save_folder(tiny_model(max_position_embeddings=512), ByteGroupTokenizer(), tmp_path / "model")
    save_format(folder, "rinna")
    results = run_jglue(str(folder), str(builtin_jglue_dir()), tasks="jcommonsenseqa-1.1-0.4,jnli-1.1-0.4",
                        limit=3, dtype="float32", device="cpu")
    for entry in results["tasks"].values():
        assert entry["status"] == "ok" and entry["n"] == 3 and 0.0 <= entry["metrics"]["acc"] <= 1.0


# --- bad input ----------------------------------------------------------------------------------------------------


def test_text_a_codec_cannot_encode_is_named_where_it_is(tmp_path, project_corpus):
    from chowa.config.generate import Sampling
    from chowa.formats import save_format
    from chowa.generate import generate_replies, load_chat_model
    from chowa.pretrain import main as pretrain

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "broken \\ud800 text"}\n', encoding="utf-8")
    with pytest.raises(ChowaError, match=r"bad.jsonl:2: .*U\+D800"):
        pretrain(_pretrain_config(tmp_path / "run", [bad], "train.steps=1"))
    folder = save_folder(tiny_model(), ByteGroupTokenizer(), tmp_path / "model")
    save_format(folder, "rinna")
    chat = load_chat_model(folder, device="cpu")
    with pytest.raises(ChowaError, match=r"prompts.jsonl:7: .*lone surrogate"):
        generate_replies(chat, [[{"role": "user", "content": "a\ud800"}]], Sampling(greedy=True),
                         names=["prompts.jsonl:7"])
    with pytest.raises(ChowaError, match=r"stop string '\\ud800'"):
        generate_replies(chat, [[{"role": "user", "content": "a"}]], Sampling(greedy=True, stop=["\ud800"]))


def test_valid_groups_option_of_generate_gives_only_whole_characters(tmp_path, capsys, tiny_model_dir):
    from chowa.cli import main as cli
    from chowa.formats import save_format

    folder = save_folder(tiny_model(seed=7), ByteGroupTokenizer(), tmp_path / "model")
    save_format(folder, "rinna")
    capsys.readouterr()
    cli(["generate", "--model", str(folder), "--prompt", "猫", "--greedy", "--max-new-tokens", "64"])
    plain = capsys.readouterr().out
    cli(["generate", "--model", str(folder), "--prompt", "猫", "--max-new-tokens", "64", "--valid-groups"])
    valid = capsys.readouterr().out
    assert "\ufffd" in plain and valid.strip() and "\ufffd" not in valid  # a random model's argmax is no character
    assert cli(["generate", "--model", str(folder), "--prompt", "猫", "--valid-groups", "--greedy"]) in (0, None)
    token_model = ["generate", "--model", str(tiny_model_dir), "--format", "rinna", "--prompt", "猫"]
    assert cli([*token_model, "--valid-groups"]) == 2
    assert "--valid-groups is for byte-group models" in capsys.readouterr().err


def test_chowa_knows_the_model_type_the_standalone_files_write():
    from chowa.bytegroup import MODEL_TYPE, is_byte_model, is_byte_tokenizer

    model = tiny_model()
    assert ByteGroupConfig.model_type == MODEL_TYPE and is_byte_model(model) and is_byte_model(model.config)
    assert is_byte_tokenizer(ByteGroupTokenizer()) and not is_byte_model({"model_type": "llama"})


@pytest.mark.dist
def test_two_processes_pretrain_a_byte_model_as_one(tmp_path, project_corpus):
    """`accelerate launch` with two CPU processes (gloo) and the same global batch gives one process's losses."""
    from chowa.pretrain import main as pretrain
    from chowa.training.plots import read_metrics
    from conftest import launch_two_processes

    common = ["tokenizer=bytes:f4-utf8", "model=bytegroup-tiny", "data.seq_len=128", "train.steps=6",
              "train.eval_every=0", "train.save_every=0", f"data.train=[{','.join(map(str, project_corpus))}]"]
    single = pretrain(_pretrain_config(tmp_path / "single", project_corpus, "train.steps=6", "train.eval_every=0",
                                       "train.save_every=0"))
    double = tmp_path / "double"
    result = launch_two_processes("pretrain", [f"out={double}", *common, "train.batch_size=2",
                                               "optim.lr=3e-3", "optim.warmup_steps=2"])
    assert result.stdout.count(f"wrote {double}") == 2  # really two processes
    one = {r["step"]: r["train_loss"] for r in read_metrics(single / "metrics.jsonl") if "train_loss" in r}
    two = {r["step"]: r["train_loss"] for r in read_metrics(double / "metrics.jsonl") if "train_loss" in r}
    assert sorted(two) == list(range(1, 7))
    for step in one:  # gloo sums in another order than one process's batch mean: float32 rounding
        assert abs(one[step] - two[step]) <= 1e-4, (step, one[step], two[step])
    assert (double / "custom_generate" / "generate.py").is_file()


def test_pad_rows_pads_byte_rows_with_whole_pad_groups():
    from chowa.padding import pad_rows

    pad = [0xFE, 0, 0xFE, 0xFE]
    ids, mask = pad_rows([[1, 2, 3, 4] * 2, [5, 6, 7, 8]], pad, "left")
    assert ids[1].tolist() == pad + [5, 6, 7, 8] and mask[1].tolist() == [0] * 4 + [1] * 4
    ids, mask = pad_rows([[1, 2, 3, 4] * 2, [5, 6, 7, 8]], pad, "right")
    assert ids[1].tolist() == [5, 6, 7, 8] + pad and mask[1].tolist() == [1] * 4 + [0] * 4
    with pytest.raises(ValueError, match="whole groups"):
        pad_rows([[1, 2, 3]], pad)
