"""sipbox: a SIP server / IP-PBX written in Python."""

# Before any compiled module can be imported: run the extensions only if they were built from
# exactly these sources (sipbox/_native.py).
from sipbox._native import NATIVE

__all__ = ["NATIVE", "__version__"]
__version__ = "0.1.0"
