"""The exception every user-facing failure derives from, so the command line can report it cleanly."""


class CompactVideoError(Exception):
    """A problem with the user's input (a file, a checkpoint, an option), stated precisely."""
