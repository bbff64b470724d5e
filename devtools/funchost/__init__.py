"""A local stand-in for the Azure Functions host, for queue-triggered Python v2 apps.

Development tool only; never deployed. See README.md in this folder.
"""

from devtools.funchost.app_loader import QueueFunction, QueueOutput
from devtools.funchost.errors import FunctionHostError
from devtools.funchost.host import LocalFunctionsHost
from devtools.funchost.options import QueuesOptions
from devtools.funchost.records import InvocationRecord, Outcome

__all__ = [
    "FunctionHostError",
    "InvocationRecord",
    "LocalFunctionsHost",
    "Outcome",
    "QueueFunction",
    "QueueOutput",
    "QueuesOptions",
]
