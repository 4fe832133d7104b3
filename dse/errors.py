"""The one user-facing error of the sweep: printed as `dse: error: <one line>`, exit status 2."""


class DseError(ValueError):
    """A sweep file, option or artifact that cannot work; the message is one line."""
