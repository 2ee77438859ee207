# The part of cloudpickle (which ships no type information) that pipeline_executor calls.
import pickle
from typing import IO, Any

def dumps(obj: object, protocol: int | None = None, buffer_callback: Any = None) -> bytes: ...
def loads(data: bytes, /, *, buffers: Any = None) -> Any: ...

class Pickler(pickle.Pickler):
    def __init__(
        self, file: IO[bytes], protocol: int | None = None, buffer_callback: Any = None
    ) -> None: ...
