"""componentize-py looks for the exported `user` resource in a module named after its interface:
this is it, the SDK's adapter from the contract to `perfhost.User` subclasses."""

from perfhost import _User as User

__all__ = ["User"]
