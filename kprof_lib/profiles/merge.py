"""Merging pprof profiles into one, as `go tool pprof -proto a b …` does, for profile-guided
optimisation (`kprof pgo` and the operator's `pgo` jobs write the result as `default.pgo`). Pure:
bytes in, bytes out.

`Merger.add(bytes)` takes one profile at a time and keeps only the merged result, so memory is
bounded by the result (distinct stacks, locations, functions), not by the number of inputs:
- samples with equal stacks and labels are summed; samples whose values are all zero are dropped;
- mappings, locations and functions are de-duplicated by identity as pprof's `profile.Merge`
  does: a mapping by its size (rounded to 4 KiB), file offset and build id (else file name); a
  location by its mapping, its address relative to the mapping's start (so address-space
  randomisation does not split it), its lines and `is_folded`; a function by name, system name,
  file name and start line. Ids are renumbered from 1 and the string table is rebuilt;
- durations are summed, the period is the largest, the time is the earliest, comments are kept once;
- values of time and size units are kept in nanoseconds and bytes, so inputs that wrote
  microseconds or kilobytes still add up; the sample types (and the period type) must otherwise
  be the same in every input, or `MergeError` names the field and the input.

`result()` writes the merged profile gzip'd, as Go serves profiles and `go build -pgo` reads them;
everything the compiler needs (`Function.start_line`, lines, inlined frames) is carried over.
"""

from __future__ import annotations

import zlib
from array import array

from google.protobuf.message import DecodeError

from kprof_lib.profiles import messages
from kprof_lib.profiles.decoding import DEFAULT_MAX_DECODED_BYTES, ProfileError, unpacked

_MAPPING_ROUNDING = 0x1000
# Samples are written out this many at a time: protobuf messages concatenate into their merge, so
# the output is built in parts and never held as one message with every sample.
_SAMPLES_PER_PART = 20_000
# String fields of the header that the first profile sets.
_HEADER_STRINGS = ("default_sample_type", "drop_frames", "keep_frames", "doc_url")

# Units pprof converts between; every value is kept in the first unit of its group.
_SCALES = {
    "nanoseconds": 1,
    "microseconds": 1_000,
    "milliseconds": 1_000_000,
    "seconds": 1_000_000_000,
    "minutes": 60_000_000_000,
    "hours": 3_600_000_000_000,
    "bytes": 1,
    "kilobytes": 1 << 10,
    "megabytes": 1 << 20,
    "gigabytes": 1 << 30,
    "terabytes": 1 << 40,
}
_BASE_UNIT = {
    unit: "nanoseconds" if unit.endswith("seconds") or unit in ("minutes", "hours") else "bytes" for unit in _SCALES
}


class MergeError(ValueError):
    """An input cannot be merged with the others (not a profile, other sample types); the message
    names the input and the field."""


class Merger:
    """Accumulates profiles one at a time (`add`) into one merged profile (`result`)."""

    def __init__(self, *, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> None:
        self.max_decoded_bytes = max_decoded_bytes
        self.profiles = 0
        self._strings: dict[str, int] = {"": 0}
        self._sample_types: list[tuple[str, str]] | None = None
        self._period_type: tuple[str, str] | None = None
        self._period = 0
        self._time_nanos = 0
        self._duration_nanos = 0
        self._comments: dict[str, None] = {}
        self._default_sample_type = ""
        self._drop_frames = ""
        self._keep_frames = ""
        self._doc_url = ""
        # Identity key -> new id (the list index + 1), with the record in new string indexes.
        self._functions: dict[tuple, int] = {}
        self._mappings: dict[tuple, int] = {}
        self._mapping_rows: list[tuple] = []
        self._locations: dict[tuple, int] = {}
        self._samples: dict[tuple, int] = {}
        self._sample_labels: list[tuple] = []
        self._values = array("q")

    # -- input ------------------------------------------------------------------------------

    def add(self, data: bytes, name: str = "") -> None:
        """Merge one profile (gzip'd or plain protobuf) in. `name` says which input in errors.
        Raises MergeError; the merge so far is unchanged when it does."""
        where = f"{name}: " if name else f"profile {self.profiles + 1}: "
        try:
            raw = unpacked(data, self.max_decoded_bytes)
        except ProfileError as error:
            raise MergeError(f"{where}{error}") from None
        message = messages.Profile()
        try:
            message.ParseFromString(raw)
        except DecodeError as error:
            raise MergeError(f"{where}not a pprof profile (protobuf: {error})") from None
        del raw
        strings = list(message.string_table)

        def text(index: int, field: str) -> str:
            if not 0 <= index < len(strings):
                raise MergeError(f"{where}{field}: string index {index} is outside string_table")
            return strings[index]

        sample_types = [
            (text(v.type, f"sample_type[{i}].type"), text(v.unit, f"sample_type[{i}].unit"))
            for i, v in enumerate(message.sample_type)
        ]
        scales = [_SCALES.get(unit, 1) for _, unit in sample_types]
        kept_types = [(kind, _BASE_UNIT.get(unit, unit)) for kind, unit in sample_types]
        period_type = None
        if message.HasField("period_type"):
            period_type = (
                text(message.period_type.type, "period_type.type"),
                text(message.period_type.unit, "period_type.unit"),
            )
        kept_period_type = (
            None if period_type is None else (period_type[0], _BASE_UNIT.get(period_type[1], period_type[1]))
        )
        if self._sample_types is not None:
            if kept_types != self._sample_types:
                raise MergeError(
                    f"{where}sample_type: {_types_text(sample_types)} differs from the profiles before "
                    f"({_types_text(self._sample_types)}); only profiles of one kind merge"
                )
            if kept_period_type != self._period_type:
                raise MergeError(
                    f"{where}period_type: {period_type} differs from the profiles before ({self._period_type})"
                )

        # Everything is checked before the merge state changes, so a bad input leaves it as it was.
        functions = self._function_keys(message, text, where)
        mappings = self._mapping_keys(message, text, where)
        locations = self._location_keys(message, functions, mappings, where)
        width = len(sample_types)
        samples = []
        for s, sample in enumerate(message.sample):
            values = sample.value
            if len(values) != width:
                raise MergeError(f"{where}sample[{s}].value: {len(values)} values for {width} sample types")
            if not any(values):
                continue
            stack = tuple(sample.location_id)
            if not all(map(locations.__contains__, stack)):
                unknown = next(k for k in stack if k not in locations)
                raise MergeError(f"{where}sample[{s}].location_id: {unknown} is not a location id")
            labels: tuple = ()
            if sample.label:
                labels = tuple(
                    sorted(
                        (
                            text(lb.key, f"sample[{s}].label.key"),
                            text(lb.str, f"sample[{s}].label.str"),
                            lb.num,
                            text(lb.num_unit, f"sample[{s}].label.num_unit"),
                        )
                        for lb in sample.label
                    )
                )
            samples.append((stack, labels, values))

        header = [text(getattr(message, name), name) for name in _HEADER_STRINGS]
        comments = [text(index, "comment") for index in message.comment]

        # The merge proper: nothing below raises.
        if self._sample_types is None:
            self._sample_types, self._period_type = kept_types, kept_period_type
            self._default_sample_type, self._drop_frames, self._keep_frames, self._doc_url = header
        period_scale = _SCALES.get(period_type[1], 1) if period_type else 1
        self._period = max(self._period, message.period * period_scale)
        if message.time_nanos and (not self._time_nanos or message.time_nanos < self._time_nanos):
            self._time_nanos = message.time_nanos
        self._duration_nanos += message.duration_nanos
        for comment in comments:
            self._comments.setdefault(comment, None)
        if not self._mappings and mappings:
            # pprof takes the first mapping to be the main binary: it stays first.
            self._mapping_id(next(iter(mappings.values())))
        location_ids = {old: self._location_id(key) for old, key in locations.items()}
        scaled = any(scale != 1 for scale in scales)
        for stack, labels, values in samples:
            merged = tuple(map(location_ids.__getitem__, stack))
            key = (merged, labels) if labels else merged
            index = self._samples.get(key)
            if index is None:
                index = self._samples[key] = len(self._samples)
                self._sample_labels.append(labels)
                self._values.extend(map(int.__mul__, values, scales) if scaled else values)
            else:
                base = index * width
                for t in range(width):
                    self._values[base + t] += values[t] * scales[t]
        self.profiles += 1

    def _function_keys(self, message, text, where: str) -> dict[int, tuple]:
        keys = {}
        for i, function in enumerate(message.function):
            if function.id == 0:
                raise MergeError(f"{where}function[{i}].id: must not be 0")
            keys[function.id] = (
                text(function.name, f"function[{i}].name"),
                text(function.system_name, f"function[{i}].system_name"),
                text(function.filename, f"function[{i}].filename"),
                function.start_line,
            )
        return keys

    def _mapping_keys(self, message, text, where: str) -> dict[int, tuple]:
        keys = {}
        for i, mapping in enumerate(message.mapping):
            if mapping.id == 0:
                raise MergeError(f"{where}mapping[{i}].id: must not be 0")
            size = mapping.memory_limit - mapping.memory_start
            size = (size + _MAPPING_ROUNDING - 1) // _MAPPING_ROUNDING * _MAPPING_ROUNDING
            filename, build_id = (
                text(mapping.filename, f"mapping[{i}].filename"),
                text(mapping.build_id, f"mapping[{i}].build_id"),
            )
            flags = (mapping.has_functions, mapping.has_filenames, mapping.has_line_numbers, mapping.has_inline_frames)
            # (identity, (start, limit, offset, file, build id, flags)): the first record of an identity is kept.
            keys[mapping.id] = (
                (size, mapping.file_offset, build_id or filename),
                (mapping.memory_start, mapping.memory_limit, mapping.file_offset, filename, build_id, flags),
            )
        return keys

    def _location_keys(self, message, functions, mappings, where: str) -> dict[int, tuple]:
        """{old location id: (mapping, address relative to the mapping's start, lines, is_folded)},
        with the mapping and each line's function as their identity keys, ready for new ids."""
        keys = {}
        for i, location in enumerate(message.location):
            if location.id == 0:
                raise MergeError(f"{where}location[{i}].id: must not be 0")
            mapping = None
            address = location.address
            if location.mapping_id:
                mapping = mappings.get(location.mapping_id)
                if mapping is None:
                    raise MergeError(f"{where}location[{i}].mapping_id: {location.mapping_id} is not a mapping id")
                address -= mapping[1][0]
            lines = []
            for j, line in enumerate(location.line):
                function = functions.get(line.function_id) if line.function_id else None
                if line.function_id and function is None:
                    raise MergeError(
                        f"{where}location[{i}].line[{j}].function_id: {line.function_id} is not a function id"
                    )
                lines.append((function, line.line, line.column))
            keys[location.id] = (mapping, address, tuple(lines), location.is_folded)
        return keys

    def _string(self, value: str) -> int:
        index = self._strings.get(value)
        if index is None:
            index = self._strings[value] = len(self._strings)
        return index

    def _function_id(self, key: tuple) -> int:
        found = self._functions.get(key)
        if found is None:
            found = self._functions[key] = len(self._functions) + 1
        return found

    def _mapping_id(self, key: tuple) -> tuple[int, int]:
        """(new id, start of the mapping kept for this identity)."""
        identity, record = key
        found = self._mappings.get(identity)
        if found is None:
            found = self._mappings[identity] = len(self._mappings) + 1
            self._mapping_rows.append(record)
        return found, self._mapping_rows[found - 1][0]

    def _location_id(self, key: tuple) -> int:
        mapping, address, lines, folded = key
        mapping_id = 0
        if mapping is not None:
            mapping_id, start = self._mapping_id(mapping)
            address += start
        merged = (mapping_id, address, tuple((self._function_id(f) if f else 0, n, c) for f, n, c in lines), folded)
        found = self._locations.get(merged)
        if found is None:
            found = self._locations[merged] = len(self._locations) + 1
        return found

    # -- output -----------------------------------------------------------------------------

    def result(self, *, compresslevel: int = 6) -> bytes:
        """The merged profile, gzip'd. Raises MergeError when nothing was added."""
        if self._sample_types is None:
            raise MergeError("no profiles to merge")
        string = self._string
        head = messages.Profile()
        for kind, unit in self._sample_types:
            head.sample_type.add(type=string(kind), unit=string(unit))
        if self._period_type is not None:
            head.period_type.type, head.period_type.unit = string(self._period_type[0]), string(self._period_type[1])
        head.period = self._period
        head.time_nanos = self._time_nanos
        head.duration_nanos = self._duration_nanos
        head.comment.extend(string(c) for c in self._comments)
        head.default_sample_type = string(self._default_sample_type)
        head.drop_frames, head.keep_frames = string(self._drop_frames), string(self._keep_frames)
        head.doc_url = string(self._doc_url)
        for number, (start, limit, offset, filename, build_id, flags) in enumerate(self._mapping_rows, start=1):
            head.mapping.add(
                id=number,
                memory_start=start,
                memory_limit=limit,
                file_offset=offset,
                filename=string(filename),
                build_id=string(build_id),
                has_functions=flags[0],
                has_filenames=flags[1],
                has_line_numbers=flags[2],
                has_inline_frames=flags[3],
            )
        for (mapping_id, address, lines, folded), number in self._locations.items():
            location = head.location.add(id=number, mapping_id=mapping_id, address=address, is_folded=folded)
            for function_id, line, column in lines:
                location.line.add(function_id=function_id, line=line, column=column)
        for (name, system_name, filename, start_line), number in self._functions.items():
            head.function.add(
                id=number,
                name=string(name),
                system_name=string(system_name),
                filename=string(filename),
                start_line=start_line,
            )
        compressor = _Gzip(compresslevel)
        width = len(self._sample_types)
        part = messages.Profile()
        for index, (key, labels) in enumerate(zip(self._samples, self._sample_labels, strict=True)):
            sample = part.sample.add()
            sample.location_id.extend(key[0] if labels else key)
            sample.value.extend(self._values[index * width : (index + 1) * width])
            for label_key, label_str, num, num_unit in labels:
                sample.label.add(key=string(label_key), str=string(label_str), num=num, num_unit=string(num_unit))
            if len(part.sample) == _SAMPLES_PER_PART:
                compressor.write(part.SerializeToString())
                part = messages.Profile()
        compressor.write(part.SerializeToString())
        # The string table last: the labels above may have added strings.
        head.string_table.extend(self._strings)
        compressor.write(head.SerializeToString())
        return compressor.finish()


class _Gzip:
    """A gzip stream written in parts (the standard library's `gzip.compress` takes one buffer)."""

    def __init__(self, level: int) -> None:
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._parts.append(self._deflate.compress(data))

    def finish(self) -> bytes:
        self._parts.append(self._deflate.flush())
        return b"".join(self._parts)


def _types_text(types) -> str:
    return "[" + ", ".join(f"{kind}/{unit}" for kind, unit in types) + "]"
