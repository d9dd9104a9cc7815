"""The paper's names for this project's --attention and --training values (published_results.csv's
`setting` column, e.g. s2_attn|lora_plus), one map for the Python and the shell scripts.

    eval "$(python -m longlora.labels)"    # in ablations/common.sh: bash arrays ATTN_LABEL, TRAINING_LABEL

Kept free of heavy imports so that the shell pays a bare interpreter start for it.
"""

ATTENTION_LABELS = {"full": "full_attn", "short": "short_attn_no_shift", "s2": "s2_attn"}
TRAINING_LABELS = {"full": "full_ft", "lora": "lora", "lora_plus": "lora_plus"}


def setting_label(attention: str, training: str) -> str:
    """The `setting` of a row about a model trained with --attention and --training (a Table 6 pattern keeps its name)."""
    return f"{ATTENTION_LABELS.get(attention, attention)}|{TRAINING_LABELS.get(training, training)}"


def bash_arrays() -> str:
    """The maps as bash associative-array declarations."""
    return "\n".join(f"declare -A {name}=({' '.join(f'[{key}]={value}' for key, value in labels.items())})"
                     for name, labels in (("ATTN_LABEL", ATTENTION_LABELS), ("TRAINING_LABEL", TRAINING_LABELS)))


if __name__ == "__main__":
    print(bash_arrays())
