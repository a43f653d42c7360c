"""The one exception type for errors a user can cause (bad config key, missing file, malformed record)."""


class ChowaError(Exception):
    """A user-facing error: the message names the file, line, key or option at fault."""


class TrainingInterrupted(ChowaError):
    """SIGINT/SIGTERM stopped a training run after it saved a checkpoint; rerunning resumes from it."""
