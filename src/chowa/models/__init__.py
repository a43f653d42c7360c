"""Models: named architecture presets mapped to `transformers` configs, random-init builds, size reports.

Run as: chowa model list; chowa model info --preset rinna-ja-3.6b
"""

from chowa.models.build import build_model, count_parameters, format_model_info, format_preset_list, model_info
from chowa.models.presets import PRESETS, Preset, build_config, get_preset, list_presets

__all__ = [
    "PRESETS",
    "Preset",
    "build_config",
    "build_model",
    "count_parameters",
    "format_model_info",
    "format_preset_list",
    "get_preset",
    "list_presets",
    "model_info",
]
