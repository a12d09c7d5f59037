"""The ProfilingConfig spec: its JSON Schemas, validation with defaults applied, and the error types.

Pure: no I/O SDK is imported here. Everything above (state, planning, the runtimes) takes a spec
from `validation.validate_spec`, so defaults and limits live in one place: schemas/.
"""
