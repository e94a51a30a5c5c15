"""componentize-py's entry: your module (its User subclasses register themselves) and the SDK's
`describe()`."""

import {name}  # noqa: F401
from perfhost import Behaviour  # noqa: F401
