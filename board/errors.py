"""The exceptions of the board stage: one clear line each, caught by the CLI and the app."""


class BoardError(RuntimeError):
    """Base of every error the demo reports to the user (console and screen)."""


class BundleError(BoardError):
    """The bundle is missing a file or its files disagree with each other."""


class CameraError(BoardError):
    """No camera, a camera that stopped delivering frames, or an unreadable video."""


class BackendError(BoardError):
    """A backend could not be built or run (missing package, bad model, wrong input)."""


class ArchMismatchError(BackendError):
    """The compiled model targets another accelerator than the one in the bitstream."""


class AcceleratorTimeoutError(BackendError):
    """The accelerator did not signal completion within the timeout."""


class ControlsError(BoardError):
    """A bad scripted event file or unusable button hardware."""


class ClassStoreError(BoardError):
    """Taught classes that cannot be saved, restored or edited as asked."""
