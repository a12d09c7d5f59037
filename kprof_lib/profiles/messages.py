"""The pprof message definitions (`profile.proto`), written here from the format's field numbers and
built at import time into a private descriptor pool, so the protobuf runtime (its C parser) decodes
profiles without generated code and without touching the default pool other libraries register in.

Only `kprof_lib.profiles.decoding` and `kprof_lib.profiles.merge` use this module.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "kprof.pprof"
_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {"int64": _F.TYPE_INT64, "uint64": _F.TYPE_UINT64, "bool": _F.TYPE_BOOL, "string": _F.TYPE_STRING}

# profile.proto's messages, each field as "name type" in field-number order from 1 (the format has
# no gaps); "*" marks a repeated field, and a type that is not a scalar is one of these messages.
_MESSAGES = {
    "Profile": "sample_type *ValueType, sample *Sample, mapping *Mapping, location *Location, function *Function, "
    "string_table *string, drop_frames int64, keep_frames int64, time_nanos int64, duration_nanos int64, "
    "period_type ValueType, period int64, comment *int64, default_sample_type int64, doc_url int64",
    "ValueType": "type int64, unit int64",
    "Sample": "location_id *uint64, value *int64, label *Label",
    "Label": "key int64, str int64, num int64, num_unit int64",
    "Mapping": "id uint64, memory_start uint64, memory_limit uint64, file_offset uint64, filename int64, "
    "build_id int64, has_functions bool, has_filenames bool, has_line_numbers bool, has_inline_frames bool",
    "Location": "id uint64, mapping_id uint64, address uint64, line *Line, is_folded bool",
    "Line": "function_id uint64, line int64, column int64",
    "Function": "id uint64, name int64, system_name int64, filename int64, start_line int64",
}


def _file() -> descriptor_pb2.FileDescriptorProto:
    # proto3, as profile.proto is: repeated scalars are packed, and the parser accepts both forms.
    proto = descriptor_pb2.FileDescriptorProto(name="kprof/pprof/profile.proto", package=_PACKAGE, syntax="proto3")
    for message_name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=message_name)
        for number, declaration in enumerate(fields.split(", "), start=1):
            name, kind = declaration.split()
            label = _F.LABEL_REPEATED if kind.startswith("*") else _F.LABEL_OPTIONAL
            kind = kind.lstrip("*")
            field = message.field.add(name=name, number=number, type=_SCALARS.get(kind, _F.TYPE_MESSAGE), label=label)
            if kind not in _SCALARS:
                field.type_name = f".{_PACKAGE}.{kind}"
    return proto


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
Profile = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{_PACKAGE}.Profile"))
