"""chowa (調和): build Japanese–English instruction-following language models the way the published ones were built.

Run as: chowa --help
"""

__version__ = "0.1.0"
