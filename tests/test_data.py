"""prepare_data.py's format on a tiny local corpus: splits, EOS, round trip, manifest."""

import hashlib
import json

import numpy as np
import pytest
from conftest import make_tokenizer, run_script
from transformers import AutoTokenizer

from longlora.corpora import clean
from longlora.corpora import split_documents
from longlora.data import load_token_stream, mix_blocks, parse_mixture, prepare

DOCS = {f"doc{i}.txt": f"Document number {i}.\n\nIt has a body of text, line after line. " * (i + 3) for i in range(8)}


@pytest.fixture()
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    for name, text in DOCS.items():
        (folder / ("sub" if name == "doc7.txt" else "") / name).write_text(text + "   \n\n\n\n")
    (folder / "more.jsonl").write_text("\n".join(json.dumps({"text": f"A json record {i}. " * 9}) for i in range(2)))
    return folder


def test_splits_are_disjoint_deterministic_and_complete():
    ids = [f"d{i}" for i in range(20)]
    splits = split_documents(ids, seed=3)
    assert splits == split_documents(list(reversed(ids)), seed=3)
    assert sorted(sum(splits.values(), [])) == sorted(ids)
    assert len(splits["validation"]) == 2 and len(splits["test"]) == 2
    with pytest.raises(ValueError, match="at least 3"):
        split_documents(["a", "b"])


def test_streams_have_eos_between_documents_and_decode_back(corpus, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    manifest = prepare(str(corpus), tiny_model_dir, out, seed=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = {doc_id: text for doc_id, text in [("sub/doc7.txt", DOCS["doc7.txt"])]
             + [(name, text) for name, text in DOCS.items() if name != "doc7.txt"]}
    texts.update({f"more.jsonl:{i}": f"A json record {i}. " * 9 for i in range(2)})
    seen = []
    for split, info in manifest["splits"].items():
        tokens = load_token_stream(str(out / info["file"]))
        assert tokens.dtype == np.uint16 and len(tokens) == info["num_tokens"]
        assert hashlib.sha256((out / info["file"]).read_bytes()).hexdigest() == info["sha256"]
        eos_positions = np.flatnonzero(tokens == tokenizer.eos_token_id)
        assert len(eos_positions) == info["num_documents"] and eos_positions[-1] == len(tokens) - 1
        pieces = np.split(np.asarray(tokens, dtype=np.int64), eos_positions + 1)[:-1]
        for doc_id, piece in zip(info["documents"], pieces):
            assert tokenizer.decode(piece[:-1]) == clean(texts[doc_id])
        seen += info["documents"]
    assert sorted(seen) == sorted(texts)
    assert manifest["dtype"] == "uint16" and manifest["eos_token_id"] == tokenizer.eos_token_id
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_prepare_data_cli_errors_in_one_line(tmp_path, tiny_model_dir):
    result = run_script("prepare_data.py", "--corpus", str(tmp_path / "missing"), "--tokenizer", tiny_model_dir)
    assert result.returncode == 2 and result.stderr.strip() == \
        f"error: corpus folder {str(tmp_path / 'missing')!r} does not exist"
    result = run_script("prepare_data.py", "--val_fraction", "1.5")
    assert result.returncode == 2 and "between 0 and 1" in result.stderr


def test_streams_are_prepared_again_when_the_tokenizer_changes(tmp_path, monkeypatch):
    """A new base model saved under the same name must not read the old tokenizer's streams."""
    from longlora import data

    model = tmp_path / "mini"
    make_tokenizer().save_pretrained(model)
    calls = []

    def fake_prepare(corpus, tokenizer_path, out):
        calls.append(corpus)
        out.mkdir(parents=True, exist_ok=True)
        (out / data.MANIFEST).write_text(json.dumps({"tokenizer_sha256": data.tokenizer_checksum(tokenizer_path)}))

    monkeypatch.setattr(data, "DATA_ROOT", tmp_path / "data")
    monkeypatch.setattr(data, "prepare", fake_prepare)
    data.default_data_path(str(model), "books", "test")
    data.default_data_path(str(model), "books", "test")
    assert calls == ["books"]  # prepared once, then reused
    make_tokenizer(vocab_size=280).save_pretrained(model)
    data.default_data_path(str(model), "books", "validation")
    assert calls == ["books", "books"]


def test_a_mixture_is_whole_blocks_of_each_corpus_in_order_at_its_share():
    books = np.arange(0, 4000, dtype=np.uint16)  # 100 blocks of 40 (and a tail that no block may use)
    math = np.arange(10000, 10000 + 2415, dtype=np.uint16)  # 60 blocks of 40
    mixed = mix_blocks({"books": books, "math": math}, {"books": 0.625, "math": 0.375}, 40, seed=3)
    blocks = mixed.reshape(-1, 40)
    # books allow 100 / 0.625 = 160 blocks, math 60 / 0.375 = 160: every block of both is used once
    from_books = blocks[:, 0] < 10000
    assert from_books.sum() == 100 and (~from_books).sum() == 60
    np.testing.assert_array_equal(blocks[from_books].reshape(-1), books)
    np.testing.assert_array_equal(blocks[~from_books].reshape(-1), math[:2400])
    math_at = np.flatnonzero(~from_books)
    assert math_at.max() - math_at.min() > len(math_at)  # interleaved, not one corpus after the other
    again = mix_blocks({"books": books, "math": math}, {"books": 0.625, "math": 0.375}, 40, seed=3)
    np.testing.assert_array_equal(mixed, again)


def test_the_scarcest_corpus_sets_the_size_of_a_mixture():
    books, math = np.zeros(100 * 8, dtype=np.uint16), np.ones(10 * 8, dtype=np.uint16)
    blocks = mix_blocks({"books": books, "math": math}, {"books": 0.5, "math": 0.5}, 8).reshape(-1, 8)
    assert len(blocks) == 20 and blocks[:, 0].sum() == 10


def test_mixture_specs_are_normalised_and_bad_ones_refused():
    assert parse_mixture("books:5,math:3") == {"books": 0.625, "math": 0.375}
    assert parse_mixture("books:1") == {"books": 1.0}
    for bad in ("books", "books:0", "books:x", "books:1,books:2", ":3", "books:-1,math:2"):
        with pytest.raises(ValueError, match="--data_mixture"):
            parse_mixture(bad)


def test_a_preparation_cut_off_leaves_no_manifest_to_trust(corpus, tmp_path, tiny_model_dir, monkeypatch):
    """Streams prepared again (a changed tokenizer) and cut off midway were read as complete: the old
    manifest stayed beside a new train.bin and an old validation.bin."""
    import longlora.data as data

    out = tmp_path / "out"
    prepare(str(corpus), tiny_model_dir, out)
    calls = []

    def killed_at_the_second_split(texts, tokenizer, desc=""):
        calls.append(desc)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return np.arange(len(texts) * 10, dtype=np.int64)

    monkeypatch.setattr(data, "tokenize_stream", killed_at_the_second_split)
    with pytest.raises(KeyboardInterrupt):
        prepare(str(corpus), tiny_model_dir, out)
    assert not (out / "manifest.json").exists()  # default_data_path prepares such a folder again
    assert sorted(p.name for p in out.iterdir()) == ["test.bin", "train.bin", "validation.bin"]  # no partial file
