"""Format a config's text once per content, not once per checkpoint.

mmengine's ``Config.pretty_text`` runs yapf over the whole config at every call (about 0.1 s
for a pre-training config on a 2-core CPU), and a Runner calls it four times at start-up and
once per saved checkpoint (into the checkpoint's meta). yapf is a pure function of its input:
:func:`reuse_config_formatting` makes mmengine keep its answers, so an unchanged config is
formatted once. The text is the same, character for character.
"""
from collections import OrderedDict
from typing import Any, Tuple

_KEEP = 32  # formatted configs kept (a process trains a handful of configs)


def reuse_config_formatting() -> None:
    """Memoise the yapf call of ``mmengine.config.Config.pretty_text`` (idempotent)."""
    import mmengine.config.config as config_module
    format_code = config_module.FormatCode
    if getattr(format_code, 'memoised', False):
        return
    answers: 'OrderedDict[Any, Tuple[str, bool]]' = OrderedDict()

    def memoised_format_code(text: str, *args, **kwargs):
        key = (text, repr(args), repr(sorted(kwargs.items())))
        if key in answers:
            answers.move_to_end(key)
        else:
            answers[key] = format_code(text, *args, **kwargs)
            if len(answers) > _KEEP:
                answers.popitem(last=False)
        return answers[key]

    memoised_format_code.memoised = True
    config_module.FormatCode = memoised_format_code
