"""Exceptions posekit raises for bad input: the tools print their message as one line and exit 2."""


class PosekitError(Exception):
    """Bad input from the user (file, key, value or argument); the message says what was expected."""


class ConfigError(PosekitError):
    """A config file, key or value is wrong."""


class DataError(PosekitError):
    """A data file (annotations, image, video) is missing or malformed."""


class CheckpointError(PosekitError):
    """A weights file is missing, unreadable or does not fit the model."""


class OutputError(PosekitError):
    """An output folder or file cannot be written (read-only, no permission, not a folder)."""
