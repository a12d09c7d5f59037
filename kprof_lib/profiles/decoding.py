"""Decoding pprof bytes (gzip'd or plain `profile.proto`) into a `model.Profile`. Pure: bytes in,
a value out; the store adapters and the CLI fetch the bytes.

Bounded: the decompressed size is capped (`max_decoded_bytes`, 1 GiB by default) before anything
is parsed; the protobuf runtime's C parser reads the samples a few MiB at a time (the top-level
fields are split with a small wire scan), and the result keeps them in flat arrays, so a decode
peaks at a small multiple of the file's size. Every
reference in the file (string indexes, location and function ids, value counts) is checked, and a
broken one raises `ProfileError` naming the field, e.g. `sample[12].location_id: 99 is not a
location id`.
"""

from __future__ import annotations

import zlib
from array import array

from google.protobuf.message import DecodeError

from kprof_lib.profiles import messages
from kprof_lib.profiles.model import Profile, SampleType

DEFAULT_MAX_DECODED_BYTES = 1 << 30
_GZIP_MAGIC = b"\x1f\x8b"
_SAMPLE_FIELD = 2
_RUN_BYTES = 4 << 20


class ProfileError(ValueError):
    """The bytes are not a valid pprof profile; the message names the field at fault."""


def decode(data: bytes, *, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> Profile:
    """The profile in `data` (gzip'd, as Go serves it, or plain protobuf)."""
    raw = unpacked(data, max_decoded_bytes)
    # Samples are most of a big profile. Parsed all at once they would sit in the parser's arena
    # beside the arrays built from them (several times the file's size); parsed a run of a few
    # MiB at a time, only the arrays stay. Everything else is parsed in one go.
    header, runs = _split(raw)
    message = _parse(header)
    return _build(message, (_parse(raw[start:end]).sample for start, end in runs))


def _parse(data: bytes):
    message = messages.Profile()
    try:
        message.ParseFromString(data)
    except DecodeError as error:
        raise ProfileError(f"not a pprof profile (protobuf: {error})") from None
    return message


def _split(raw: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """(every top-level field but the samples, [(start, end)] of runs of sample fields of at
    most about `_RUN_BYTES`). Protobuf messages concatenate into their merge, so each part parses
    on its own."""
    header = bytearray()
    runs: list[tuple[int, int]] = []
    run_start = run_end = -1
    pos, size = 0, len(raw)
    while pos < size:
        start = pos
        tag, pos = _varint(raw, pos)
        kind = tag & 7
        if kind == 2:
            length, pos = _varint(raw, pos)
            pos += length
        elif kind == 0:
            _, pos = _varint(raw, pos)
        elif kind == 1:
            pos += 8
        elif kind == 5:
            pos += 4
        else:
            raise ProfileError(f"not a pprof profile (wire type {kind} at byte {start})")
        if pos > size:
            raise ProfileError(f"not a pprof profile (field at byte {start} runs past the end)")
        if tag >> 3 == _SAMPLE_FIELD and kind == 2:
            if run_start >= 0 and (start != run_end or pos - run_start > _RUN_BYTES):
                runs.append((run_start, run_end))
                run_start = -1
            if run_start < 0:
                run_start = start
            run_end = pos
        else:
            header += raw[start:pos]
    if run_start >= 0:
        runs.append((run_start, run_end))
    return bytes(header), runs


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos] if pos < len(data) else -1
    if 0 <= byte < 0x80:
        return byte, pos + 1
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProfileError(f"not a pprof profile (malformed varint at byte {pos})")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def unpacked(data: bytes, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> bytes:
    """The protobuf bytes of a profile, gzip'd (as Go serves it) or plain, refusing more than
    `max_decoded_bytes`; `ProfileError` otherwise."""
    raw = gunzip(data, max_decoded_bytes) if data[:2] == _GZIP_MAGIC else bytes(data)
    if len(raw) > max_decoded_bytes:
        raise ProfileError(f"profile is {len(raw)} bytes, more than the limit of {max_decoded_bytes}")
    return raw


def gunzip(data: bytes, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> bytes:
    """The decompressed content of gzip `data`, refusing more than `max_decoded_bytes`."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_decoded_bytes + 1)
    except zlib.error as error:
        raise ProfileError(f"gzip: {error}") from None
    if len(out) > max_decoded_bytes:
        raise ProfileError(f"profile decompresses to more than the limit of {max_decoded_bytes} bytes")
    if not inflater.eof:
        raise ProfileError("gzip: the data ends before the compressed stream does (truncated profile?)")
    return out


def _build(message, sample_runs) -> Profile:
    strings = list(message.string_table)
    if strings and strings[0] != "":
        raise ProfileError(f"string_table[0]: must be the empty string, found {strings[0]!r}")

    def text(index: int, where: str) -> str:
        if not 0 <= index < len(strings):
            raise ProfileError(f"{where}: string index {index} is outside string_table (size {len(strings)})")
        return strings[index]

    sample_types = [
        SampleType(text(v.type, f"sample_type[{i}].type"), text(v.unit, f"sample_type[{i}].unit"))
        for i, v in enumerate(message.sample_type)
    ]
    default = text(message.default_sample_type, "default_sample_type")
    if not default and sample_types:
        # What `go tool pprof` shows when the file names no default: the last sample type.
        default = sample_types[-1].type
    if default and all(t.type != default for t in sample_types):
        raise ProfileError(f"default_sample_type: {default!r} is not one of the sample types")
    period_type = None
    if message.HasField("period_type"):
        period_type = SampleType(
            text(message.period_type.type, "period_type.type"), text(message.period_type.unit, "period_type.unit")
        )

    # Functions are keyed by name: two function records with one name are one node in pprof's
    # default (function) granularity.
    names: list[str] = []
    files: list[str] = []
    by_name: dict[str, int] = {}
    function_index: dict[int, int] = {}
    for i, function in enumerate(message.function):
        if function.id == 0:
            raise ProfileError(f"function[{i}].id: must not be 0")
        name = text(function.name, f"function[{i}].name")
        text(function.system_name, f"function[{i}].system_name")
        index = by_name.get(name)
        if index is None:
            index = by_name[name] = len(names)
            names.append(name)
            files.append(text(function.filename, f"function[{i}].filename"))
        function_index[function.id] = index

    locations: list[tuple[int, ...]] = []
    location_index: dict[int, int] = {}
    for i, location in enumerate(message.location):
        if location.id == 0:
            raise ProfileError(f"location[{i}].id: must not be 0")
        frames = []
        for j, line in enumerate(location.line):
            index = function_index.get(line.function_id)
            if index is None:
                raise ProfileError(f"location[{i}].line[{j}].function_id: {line.function_id} is not a function id")
            frames.append(index)
        if not frames:
            # An unsymbolized address: pprof shows it by address; keep it visible the same way.
            name = f"0x{location.address:x}"
            index = by_name.get(name)
            if index is None:
                index = by_name[name] = len(names)
                names.append(name)
                files.append("")
            frames.append(index)
        location_index[location.id] = len(locations)
        locations.append(tuple(frames))

    width = len(sample_types)
    stack_ids = array("I")
    stack_starts = array("Q", [0])
    values = array("q")
    lookup = location_index.__getitem__
    s = 0
    for run in sample_runs:
        for sample in run:
            value = sample.value
            if len(value) != width:
                raise ProfileError(f"sample[{s}].value: {len(value)} values for {width} sample types")
            try:
                stack_ids.extend(map(lookup, sample.location_id))
            except KeyError as error:
                raise ProfileError(f"sample[{s}].location_id: {error.args[0]} is not a location id") from None
            stack_starts.append(len(stack_ids))
            values.extend(value)
            s += 1

    return Profile(
        sample_types=sample_types,
        default_sample_type=default,
        period_type=period_type,
        period=message.period,
        time_nanos=message.time_nanos,
        duration_nanos=message.duration_nanos,
        function_names=names,
        function_files=files,
        locations=locations,
        stack_ids=stack_ids,
        stack_starts=stack_starts,
        values=values,
        comments=[text(c, "comment") for c in message.comment],
    )
