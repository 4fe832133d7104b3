"""`ContractError`: an artifact or record that breaks a contract (one line)."""


class ContractError(ValueError):
    """A record that breaks one of the artifact contracts; the message is one line."""
