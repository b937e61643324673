from ..core.errors import LoraDeckError


class WorkflowError(LoraDeckError):
    """A workflow file cannot be read, converted or run headless; the message says which node and why."""
