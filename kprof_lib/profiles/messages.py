"""The pprof message definitions (`profile.proto`), written here from the format's field numbers and
built at import time into a private descriptor pool, so the protobuf runtime (its C parser) decodes
profiles without generated code and without touching the default pool other libraries register in.

Only `kprof_lib.profiles.decoding` uses this module.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "kprof.pprof"
_F = descriptor_pb2.FieldDescriptorProto
_REPEATED, _OPTIONAL = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
_INT64, _UINT64, _BOOL, _STRING, _MESSAGE = _F.TYPE_INT64, _F.TYPE_UINT64, _F.TYPE_BOOL, _F.TYPE_STRING, _F.TYPE_MESSAGE

# (message, [(field, number, type, repeated, message type)]), from profile.proto.
_MESSAGES: list[tuple[str, list[tuple[str, int, Any, bool, str | None]]]] = [
    (
        "Profile",
        [
            ("sample_type", 1, _MESSAGE, True, "ValueType"),
            ("sample", 2, _MESSAGE, True, "Sample"),
            ("mapping", 3, _MESSAGE, True, "Mapping"),
            ("location", 4, _MESSAGE, True, "Location"),
            ("function", 5, _MESSAGE, True, "Function"),
            ("string_table", 6, _STRING, True, None),
            ("drop_frames", 7, _INT64, False, None),
            ("keep_frames", 8, _INT64, False, None),
            ("time_nanos", 9, _INT64, False, None),
            ("duration_nanos", 10, _INT64, False, None),
            ("period_type", 11, _MESSAGE, False, "ValueType"),
            ("period", 12, _INT64, False, None),
            ("comment", 13, _INT64, True, None),
            ("default_sample_type", 14, _INT64, False, None),
            ("doc_url", 15, _INT64, False, None),
        ],
    ),
    ("ValueType", [("type", 1, _INT64, False, None), ("unit", 2, _INT64, False, None)]),
    (
        "Sample",
        [
            ("location_id", 1, _UINT64, True, None),
            ("value", 2, _INT64, True, None),
            ("label", 3, _MESSAGE, True, "Label"),
        ],
    ),
    (
        "Label",
        [
            ("key", 1, _INT64, False, None),
            ("str", 2, _INT64, False, None),
            ("num", 3, _INT64, False, None),
            ("num_unit", 4, _INT64, False, None),
        ],
    ),
    (
        "Mapping",
        [
            ("id", 1, _UINT64, False, None),
            ("memory_start", 2, _UINT64, False, None),
            ("memory_limit", 3, _UINT64, False, None),
            ("file_offset", 4, _UINT64, False, None),
            ("filename", 5, _INT64, False, None),
            ("build_id", 6, _INT64, False, None),
            ("has_functions", 7, _BOOL, False, None),
            ("has_filenames", 8, _BOOL, False, None),
            ("has_line_numbers", 9, _BOOL, False, None),
            ("has_inline_frames", 10, _BOOL, False, None),
        ],
    ),
    (
        "Location",
        [
            ("id", 1, _UINT64, False, None),
            ("mapping_id", 2, _UINT64, False, None),
            ("address", 3, _UINT64, False, None),
            ("line", 4, _MESSAGE, True, "Line"),
            ("is_folded", 5, _BOOL, False, None),
        ],
    ),
    (
        "Line",
        [
            ("function_id", 1, _UINT64, False, None),
            ("line", 2, _INT64, False, None),
            ("column", 3, _INT64, False, None),
        ],
    ),
    (
        "Function",
        [
            ("id", 1, _UINT64, False, None),
            ("name", 2, _INT64, False, None),
            ("system_name", 3, _INT64, False, None),
            ("filename", 4, _INT64, False, None),
            ("start_line", 5, _INT64, False, None),
        ],
    ),
]


def _file() -> descriptor_pb2.FileDescriptorProto:
    # proto3, as profile.proto is: repeated scalars are packed, and the parser accepts both forms.
    proto = descriptor_pb2.FileDescriptorProto(name="kprof/pprof/profile.proto", package=_PACKAGE, syntax="proto3")
    for message_name, fields in _MESSAGES:
        message = proto.message_type.add(name=message_name)
        for name, number, kind, repeated, type_name in fields:
            field = message.field.add(name=name, number=number, type=kind, label=_REPEATED if repeated else _OPTIONAL)
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
    return proto


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
Profile = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{_PACKAGE}.Profile"))
