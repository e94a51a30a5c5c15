"""componentize-py looks for the classes of an exported interface's resources in a module named
after the interface (`behaviour`); the user resource lives in `burst_user`."""

from burst_user import User

__all__ = ["User"]
