"""The mini base's pretraining recipe (longlora.pretraining, run by pretrain_base.py). Depth growth
after the copy warm-up: the grown model must compute what the small one did (the induction heads
formed in the warm-up carry over), and then train every layer."""

from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from longlora import pretraining


def small_llama(layers: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def test_grown_model_computes_what_the_small_one_did():

    small = small_llama(2).eval()
    ids = torch.randint(0, 64, (3, 16))
    big = pretraining.grown(small, 5).eval()
    assert big.config.num_hidden_layers == 5 and small.config.num_hidden_layers == 2
    with torch.no_grad():
        torch.testing.assert_close(big(ids).logits, small(ids).logits)
    assert big.lm_head.weight.data_ptr() == big.model.embed_tokens.weight.data_ptr()  # still tied


def test_grown_layers_receive_gradient_after_one_step():

    big = pretraining.grown(small_llama(1), 3)
    optimizer = pretraining.adamw(big, SimpleNamespace(learning_rate=1e-2, weight_decay=0.0))
    ids = torch.randint(0, 64, (4, 16))
    big(ids, labels=ids).loss.backward()
    optimizer.step()
    assert big.model.layers[2].mlp.down_proj.weight.abs().sum() > 0
    assert big.model.layers[2].self_attn.o_proj.weight.abs().sum() > 0


def test_layers_follow_the_warm_up():

    args = SimpleNamespace(copy_warmup_layers=2, layers=6, copy_warmup_steps=1000)
    assert [pretraining.layers_at(args, s) for s in (0, 999, 1000, 2000)] == [2, 2, 6, 6]


def test_a_checkpoint_is_rebuilt_with_the_layers_it_was_saved_with():

    # the warm-up's last checkpoint has the small model's layers; growth happens after loading it
    assert pretraining.saved_layers(small_llama(2).state_dict()) == 2
    assert pretraining.saved_layers(pretraining.grown(small_llama(2), 6).state_dict()) == 6


class SizedTokenizer:
    """What BlockSampler.copy_block asks of a tokenizer: its size."""

    def __len__(self):
        return 4096


def test_copy_variants_repeat_their_span_and_text_spans_come_from_the_stream():
    import numpy as np

    stream = np.arange(10_000, 20_000, dtype=np.uint16)
    sampler = pretraining.BlockSampler({"books": stream, "math": stream}, [], SizedTokenizer(),
                                       np.random.default_rng(0))
    for variant in set(pretraining.COPY_VARIANTS) - {"motif"}:  # motif documents: test_synthetic.py
        for _ in range(20):
            ids, labels = sampler.copy_block(256, variant)
            period = int((labels == -100).sum())  # the first period is not a target, its repeats are
            assert np.array_equal(labels[period:], ids[period:]) and (labels[:period] == -100).all()
            assert len(ids) == 256 and 8 <= period <= 128 and np.array_equal(ids[period:], ids[:-period])
            if variant == "text":  # consecutive stream tokens
                assert np.array_equal(np.diff(ids[:period]), np.ones(period - 1))
            if variant == "small_alphabet":
                assert len(set(ids[:period].tolist())) <= 16


def test_copy_documents_are_random_spans_alone_during_the_warm_up():

    args = SimpleNamespace(copy_warmup_steps=700, ngram_copy_share=0.3, text_copy_share=0.4, motif_copy_share=0.2)
    assert pretraining.copy_weights(args, 699) == [1.0, 0.0, 0.0, 0.0]
    assert pretraining.copy_weights(args, 700) == pytest.approx([0.1, 0.3, 0.4, 0.2])


class WordTokenizer:
    """One token per word, and an end-of-text id: enough for BlockSampler's recall documents."""

    eos_token_id = 2

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [4 + len(word) for word in text.split()]}


def test_recall_documents_fit_their_room_and_some_fill_a_block():
    """A recall document is cut to its room only where even no filler would not fit; its filler
    grows with the room, so that queries look back over most of a block, as a passkey's does."""
    import numpy as np

    filler = ["It rained all day and the roads were flooded.", "Nobody came to the door that evening."]
    sampler = pretraining.BlockSampler({}, filler, WordTokenizer(), np.random.default_rng(0))
    lengths = [len(sampler.recall_document(256)) for _ in range(300)]
    assert max(lengths) <= 256 and max(lengths) > 200 and min(lengths) < 100
    assert len(sampler.recall_block(256)) == 256


def test_repeat_share_picks_repeat_documents_for_whole_blocks():
    """With --repeat_share 1 a recall block holds repeats and no fact; with 0, facts."""
    import numpy as np

    filler = ["It rained all day and the roads were flooded.", "Nobody came to the door that evening."]
    for share, expect_facts in ((1.0, False), (0.0, True)):
        sampler = pretraining.BlockSampler({}, filler, WordTokenizer(), np.random.default_rng(1), share)
        words = {4 + len(w) for s in filler for w in s.split()}
        blocks = [sampler.recall_block(128) for _ in range(20)]
        assert any(set(b.tolist()) - words - {2} for b in blocks) == expect_facts


def test_cycled_filler_documents_use_short_sentences():
    import numpy as np

    long_one = "This sentence is far longer than any sentence a cycled filler may say over and over again."
    filler = [long_one, "It rained.", "Nobody came."]
    sampler = pretraining.BlockSampler({}, filler, WordTokenizer(), np.random.default_rng(2), 0.0, 1.0)
    assert len(long_one) > max(pretraining.CYCLE_SENTENCE_CHARS)
    blocks = [sampler.recall_block(128) for _ in range(10)]
    sampler_any = pretraining.BlockSampler({}, filler, WordTokenizer(), np.random.default_rng(2), 0.0, 0.0)
    long_ids = WordTokenizer()(long_one)["input_ids"]
    contains = lambda block: any(block[i:i + len(long_ids)].tolist() == long_ids for i in range(len(block)))
    assert not any(contains(b) for b in blocks)
    assert any(contains(sampler_any.recall_block(128)) for _ in range(10))


def test_most_cycled_fillers_are_as_dense_as_the_passkey_tests():
    """Each cycled document draws its longest sentence from CYCLE_SENTENCE_CHARS, so that most
    say only short sentences over and over (the relation's last word every few tokens) and some
    the longer ones too."""
    import numpy as np

    short, longer = "Snow is white.", "The long winding river is a very pleasant sight at dawn."
    assert len(short) <= min(pretraining.CYCLE_SENTENCE_CHARS) and 40 < len(longer) <= 60
    sampler = pretraining.BlockSampler({}, [short, longer], WordTokenizer(), np.random.default_rng(3), 0.0, 1.0)
    longer_ids = WordTokenizer()(longer)["input_ids"]
    documents = [np.asarray(sampler.recall_document(256)) for _ in range(200)]
    holds_longer = [any(d[i:i + len(longer_ids)].tolist() == longer_ids for i in range(len(d))) for d in documents]
    assert 0 < np.mean(holds_longer) < 0.5


def test_cycled_fact_documents_fill_their_room():
    """A cycled document's query looks back across its whole block, as a passkey question does."""
    import numpy as np

    filler = ["Snow is white.", "It is cold.", "The lake is deep and still."]
    for share, fills in ((1.0, True), (0.0, False)):
        sampler = pretraining.BlockSampler({}, filler, WordTokenizer(), np.random.default_rng(4), 0.0, share)
        lengths = [len(sampler.recall_document(256)) for _ in range(50)]
        assert max(lengths) <= 256
        assert (np.median(lengths) >= 0.8 * 256) == fills


def test_interpolated_rows_have_compressed_positions_only_after_the_curriculum():
    import numpy as np

    args = SimpleNamespace(curriculum_steps=10, interpolated_share=0.5, smallest_position_scale=0.5)
    steps = torch.arange(8, dtype=torch.float32)
    early = pretraining.position_ids(args, 9, 64, 8, np.random.default_rng(0))
    assert torch.equal(early, steps.expand(64, -1))
    late = pretraining.position_ids(args, 10, 64, 8, np.random.default_rng(0))
    scales = late[:, 1]  # position 1 of each row is its factor
    torch.testing.assert_close(late, scales[:, None] * steps)
    compressed = scales < 1
    assert 16 < compressed.sum() < 48 and scales.min() >= 0.5


def test_the_log_scores_pi_by_two_as_evaluation_builds_it():
    # independent reference: RoPE at positions 0, 0.5, 1, ... is what linear PI by 2 computes

    model = small_llama(2).eval()
    ids = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        halved = model(ids, position_ids=torch.arange(16, dtype=torch.float32)[None] / 2).logits
        torch.testing.assert_close(pretraining.interpolated(model, 2).eval()(ids).logits, halved)
        assert not torch.allclose(model(ids).logits, halved)


def test_row_mean_loss_weighs_every_row_with_targets_the_same():
    """Against a hand-written loop: each row's mean next-token loss over its own targets, then
    their mean; a row without targets is left out. With as many targets in every row it is the
    usual token-averaged loss."""
    import math

    import torch

    torch.manual_seed(0)
    logits = torch.randn(3, 6, 11)
    labels = torch.randint(0, 11, (3, 6))
    labels[0, :4] = -100  # 1 target in row 0 (position 5 after the shift drops position 0)
    labels[2] = -100  # no target
    expected = []
    for row in range(2):
        losses = [-torch.log_softmax(logits[row, t - 1], -1)[labels[row, t]].item()
                  for t in range(1, 6) if labels[row, t] != -100]
        expected.append(sum(losses) / len(losses))
    assert math.isclose(pretraining.row_mean_loss(logits, labels).item(), sum(expected) / 2, rel_tol=1e-5)
    full = torch.randint(0, 11, (3, 6))
    token_mean = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), full[:, 1:].reshape(-1))
    assert math.isclose(pretraining.row_mean_loss(logits, full).item(), token_mean.item(), rel_tol=1e-5)


def test_copy_periods_reach_farther_once_the_curriculum_is_over():

    args = SimpleNamespace(curriculum_steps=1000, longest_copy_period=0.875)
    assert pretraining.longest_copy_period(args, 999, 64) == 32  # the warm-up's induction heads form on these
    assert pretraining.longest_copy_period(args, 1000, 256) == 224
