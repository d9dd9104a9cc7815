"""--help shared by every script (light: no torch or transformers, so plot_results.py can use it)."""

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends '(default: X)' only where the help does not state its default already, and never
    to a --no_X switch: both read as two contradictory defaults ('--bf16 ... (default: on where
    the GPU supports it). (default: False)', '--no_resume ... (default: False)')."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or any(o.startswith("--no_") for o in action.option_strings):
            return text
        return super()._get_help_string(action)


def description(doc: str) -> str:
    """A script's first paragraph as its --help description (its first line alone stops mid-sentence)."""
    return " ".join(doc.strip().split("\n\n")[0].split())
