"""UserError, the one-line error of bad input, and the one line of any error."""


class UserError(ValueError):
    """A problem with the command line, the files or the data: reported in one line,
    without a traceback. Any other exception is a bug and keeps its traceback."""


def error_summary(error):
    """One line of what went wrong: the last line of a TensorFlow error's message
    that is not the graph's context (where the op was defined, its node name)."""
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines()]
    context = ("Graph execution error", "Detected at node", "File ", "Node:", "[[", "Hint:")
    meaningful = [line for line in lines if line and not line.startswith(context)]
    return meaningful[-1] if meaningful else type(error).__name__
